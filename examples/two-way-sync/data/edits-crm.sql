-- What the CRM changed while the sync was stopped (the morning of
-- 2026-11-27, UTC).

-- 1 Acme: credit limit raised, new street (billing also edits both).
UPDATE customers SET credit_limit = 5000, street = 'CRM St 9',
    address_updated_at = '2026-11-27T09:10:00Z', updated_at = '2026-11-27T09:10:00Z'
    WHERE id = 1;
-- 2 Globex: new email (billing sets another one, earlier).
UPDATE customers SET email = 'ap@globex.example', updated_at = '2026-11-27T09:20:00Z'
    WHERE id = 2;
-- 3 Initech: deleted (billing raises its credit limit).
DELETE FROM customers WHERE id = 3;
-- 4 Umbrella: renamed (billing leaves it alone).
UPDATE customers SET name = 'Umbrella Corp', updated_at = '2026-11-27T09:05:00Z'
    WHERE id = 4;
-- 5 Hooli: credit limit 800 (billing makes the very same change).
UPDATE customers SET credit_limit = 800, updated_at = '2026-11-27T09:30:00Z'
    WHERE id = 5;
