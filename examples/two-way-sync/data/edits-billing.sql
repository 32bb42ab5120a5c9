-- What billing changed while the sync was stopped (the morning of
-- 2026-11-27, UTC).

-- 1 Acme: credit limit set to 2000, moved to Hamburg.
UPDATE customers SET credit_limit = 2000, street = 'Billing Rd 2', city = 'Hamburg',
    address_updated_at = '2026-11-27T09:15:00Z', updated_at = '2026-11-27T09:15:00Z'
    WHERE id = 1;
-- 2 Globex: another email, and a credit limit of 750 (the CRM leaves the
-- limit alone).
UPDATE customers SET email = 'billing@globex.example', credit_limit = 750,
    updated_at = '2026-11-27T09:12:00Z'
    WHERE id = 2;
-- 3 Initech: credit limit raised (the CRM deleted the customer).
UPDATE customers SET credit_limit = 900, updated_at = '2026-11-27T09:00:00Z'
    WHERE id = 3;
-- 5 Hooli: credit limit 800, the same change as the CRM's.
UPDATE customers SET credit_limit = 800, updated_at = '2026-11-27T09:30:00Z'
    WHERE id = 5;
-- 6 Stark Industries: a new customer, in billing only.
INSERT INTO customers (id, name, email, credit_limit, street, city, address_updated_at, updated_at) VALUES
    (6, 'Stark Industries', 'pepper@stark.example', 10000, 'Tower Ave 1', 'New York',
     '2026-11-27T09:40:00Z', '2026-11-27T09:40:00Z');
