-- The customers table, the same in both systems (the CRM and billing).
-- Times are RFC 3339 text in UTC ("2026-11-27T09:10:00Z"): text order is
-- time order, and ferry reads them as instants (`timestamp_field`, the
-- resolver's `by`).
CREATE TABLE customers (
    id                 INTEGER PRIMARY KEY,
    name               TEXT NOT NULL,
    email              TEXT,
    credit_limit       INTEGER NOT NULL,
    street             TEXT,
    city               TEXT,
    address_updated_at TEXT,          -- when street/city last changed
    updated_at         TEXT NOT NULL  -- when the row last changed
);
