-- Seed data: 500 customers, 5,000 orders. Deterministic (no random()), so
-- every run of the example gives the same warehouse.

INSERT INTO customers (id, name, email, country, credit_limit, updated_at)
SELECT i,
       'Customer ' || i,
       CASE WHEN i % 50 = 0 THEN NULL ELSE 'customer' || i || '@example.com' END,
       (ARRAY['DE', 'FR', 'NL', 'US', 'GB'])[1 + i % 5],
       (1000 + (i % 20) * 250)::numeric(12, 2),
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, 500) AS i;

INSERT INTO orders (id, customer_id, status, total, currency, items, placed_at, updated_at)
SELECT i,
       1 + i % 500,
       (ARRAY['placed', 'paid', 'shipped', 'delivered'])[1 + i % 4],
       ((i % 97) * 3.15 + 9.99)::numeric(12, 2),
       CASE WHEN i % 7 = 0 THEN 'USD' ELSE 'EUR' END,
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i % 40), 'qty', 1 + i % 3)),
       timestamptz '2026-02-01 00:00:00+00' + i * interval '5 minutes',
       timestamptz '2026-02-01 00:00:00+00' + i * interval '5 minutes'
FROM generate_series(1, 5000) AS i;
