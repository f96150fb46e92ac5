-- The default price book: public list prices per million tokens, in nano-units
-- ($3.00 = 3000000000), standard (non-batch) API rates.
--
-- Source: anthropic.com/pricing and openai.com/api/pricing, as published and known to us
-- on 2025-11-24 (the date of this seed's source, not of the build). Anthropic cache writes
-- are the 5-minute rate (1.25x input), cache reads 0.1x input; OpenAI has no cache-write
-- charge and lists "cached input". Both offer 50% off through their batch APIs.
-- Prices change: admins edit them in the console or through the API; check before going live.

INSERT INTO models (id, provider, input_rate, output_rate, cache_write_rate, cache_read_rate, batch_discount_percent, updated_at) VALUES
    ('claude-opus-4-5',   'anthropic',  5000000000, 25000000000,  6250000000,  500000000, 50, 0),
    ('claude-opus-4-1',   'anthropic', 15000000000, 75000000000, 18750000000, 1500000000, 50, 0),
    ('claude-sonnet-4-5', 'anthropic',  3000000000, 15000000000,  3750000000,  300000000, 50, 0),
    ('claude-sonnet-4',   'anthropic',  3000000000, 15000000000,  3750000000,  300000000, 50, 0),
    ('claude-haiku-4-5',  'anthropic',  1000000000,  5000000000,  1250000000,  100000000, 50, 0),
    ('claude-3-5-haiku',  'anthropic',   800000000,  4000000000,  1000000000,   80000000, 50, 0),
    ('gpt-5',             'openai',     1250000000, 10000000000,           0,  125000000, 50, 0),
    ('gpt-5-mini',        'openai',      250000000,  2000000000,           0,   25000000, 50, 0),
    ('gpt-5-nano',        'openai',       50000000,   400000000,           0,    5000000, 50, 0),
    ('gpt-4.1',           'openai',     2000000000,  8000000000,           0,  500000000, 50, 0),
    ('gpt-4.1-mini',      'openai',      400000000,  1600000000,           0,  100000000, 50, 0),
    ('gpt-4o',            'openai',     2500000000, 10000000000,           0, 1250000000, 50, 0),
    ('gpt-4o-mini',       'openai',      150000000,   600000000,           0,   75000000, 50, 0),
    ('o3',                'openai',     2000000000,  8000000000,           0,  500000000, 50, 0),
    ('o4-mini',           'openai',     1100000000,  4400000000,           0,  275000000, 50, 0);

-- The default plan: list prices, no markup.
INSERT INTO plans (id, name, created_at) VALUES ('standard', 'Standard', 0);
INSERT INTO plan_versions (id, plan_id, version, terms, created_at) VALUES
    ('plv_standard_1', 'standard', 1, '{}', 0);
