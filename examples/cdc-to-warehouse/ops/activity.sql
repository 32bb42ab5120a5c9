-- A burst of business while the CDC pipeline runs: new orders, status
-- changes, a cancelled order deleted, and a multi-row transaction that the
-- warehouse must see all at once or not at all.

INSERT INTO orders (id, customer_id, status, total, items)
SELECT i, 1 + i % 500, 'placed', (i % 50 + 0.5)::numeric(12, 2),
       jsonb_build_array(jsonb_build_object('sku', 'SKU-NEW', 'qty', 1))
FROM generate_series(5001, 5200) AS i;

UPDATE orders SET status = 'shipped' WHERE id BETWEEN 1 AND 100 AND status = 'paid';

DELETE FROM orders WHERE id = 4999;

BEGIN;
UPDATE orders SET total = total * 0.9, status = 'discounted' WHERE customer_id = 42;
INSERT INTO orders (id, customer_id, status, total) VALUES (6000, 42, 'placed', 10.00);
COMMIT;

-- An order the validator refuses (a negative total): it goes to the
-- dead-letter store with the reason, the others go on.
INSERT INTO orders (id, customer_id, status, total) VALUES (6001, 7, 'placed', -5.00);

-- Customer changes for the nightly delta sync.
UPDATE customers SET credit_limit = credit_limit + 500 WHERE id % 10 = 0;
INSERT INTO customers (id, name, email, country) VALUES (501, 'Late Customer', 'late@example.com', 'DE');
