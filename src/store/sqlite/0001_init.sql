-- Events: one row per distinct provider event; `seq` is arrival order.
CREATE TABLE events (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL,
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
    payload           TEXT NOT NULL
);
CREATE UNIQUE INDEX events_dedupe ON events (source, dedupe_key);
CREATE UNIQUE INDEX events_id ON events (id);
CREATE INDEX events_message ON events (message_id) WHERE message_id IS NOT NULL;

-- Request log: every webhook request, accepted or not; bounded by pruning.
CREATE TABLE requests (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    source      TEXT NOT NULL,
    status      INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    remote_addr TEXT,
    size        INTEGER NOT NULL,
    body_sha256 TEXT,
    event_id    TEXT
);
