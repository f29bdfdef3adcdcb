-- Events: one row per distinct provider event. `seq` is commit order: writers
-- take an advisory lock for their whole transaction (see postgres.rs), so a
-- cursor over `seq` never skips a row that commits late.
CREATE TABLE events (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    source            TEXT NOT NULL,
    provider          TEXT NOT NULL,
    dedupe_key        TEXT NOT NULL,
    provider_event_id TEXT,
    type              TEXT NOT NULL,
    provider_type     TEXT,
    message_id        TEXT,
    from_number       TEXT,
    to_number         TEXT,
    body              TEXT,
    status            TEXT,
    error_code        TEXT,
    error_reason      TEXT,
    occurred_at       TEXT,
    received_at       TEXT NOT NULL,
    -- `json`, not `jsonb`: it keeps the provider's bytes exactly.
    payload           JSON NOT NULL,
    UNIQUE (source, dedupe_key)
);
CREATE INDEX events_message ON events (message_id) WHERE message_id IS NOT NULL;

-- Request log: every webhook request, accepted or not; bounded by pruning.
CREATE TABLE requests (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TEXT NOT NULL,
    source      TEXT NOT NULL,
    status      INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    remote_addr TEXT,
    size        BIGINT NOT NULL,
    body_sha256 TEXT,
    event_id    TEXT
);
