-- Five customers, loaded into the CRM only: the first sync copies them to
-- billing.
INSERT INTO customers (id, name, email, credit_limit, street, city, address_updated_at, updated_at) VALUES
    (1, 'Acme',     'ap@acme.example',         1000, 'Old St 1',      'Berlin',       '2026-11-26T18:00:00Z', '2026-11-26T18:00:00Z'),
    (2, 'Globex',   'info@globex.example',      500, 'Main St 5',     'Paris',        '2026-11-26T18:00:00Z', '2026-11-26T18:00:00Z'),
    (3, 'Initech',  'accounts@initech.example', 700, 'Office Park 3', 'Austin',       '2026-11-26T18:00:00Z', '2026-11-26T18:00:00Z'),
    (4, 'Umbrella', 'finance@umbrella.example', 300, 'Hive Way 1',    'Raccoon City', '2026-11-26T18:00:00Z', '2026-11-26T18:00:00Z'),
    (5, 'Hooli',    'ap@hooli.example',         400, 'Campus Dr 1',   'Palo Alto',    '2026-11-26T18:00:00Z', '2026-11-26T18:00:00Z');
