-- The "operations" database of a small shop: customers place orders.
-- Every table has a primary key (CDC and upserts need one) and an
-- updated_at column kept current by a trigger (the delta sync's cursor).

CREATE TABLE customers (
    id           bigint PRIMARY KEY,
    name         text NOT NULL,
    email        text,
    country      text NOT NULL,
    credit_limit numeric(12, 2) NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status      text NOT NULL,
    total       numeric(12, 2) NOT NULL,
    currency    text NOT NULL DEFAULT 'EUR',
    items       jsonb NOT NULL DEFAULT '[]',
    placed_at   timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION touch_updated_at() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER customers_touch BEFORE UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE INDEX customers_updated_at ON customers (updated_at, id);
