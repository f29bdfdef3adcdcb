-- true: the event opts its number out; false: back in; NULL: neither.
ALTER TABLE events ADD COLUMN opt_out BOOLEAN;

-- Current status per message; `rank` only ever goes up (see message.rs).
CREATE TABLE messages (
    source      TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    rank        INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (source, message_id)
);

-- Consent per number; the latest change (by the provider's time) wins.
CREATE TABLE optouts (
    number      TEXT PRIMARY KEY,
    opted_out   BOOLEAN NOT NULL,
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    changed_at  TEXT NOT NULL
);

-- The outbox: one row per (event, destination) hand-off, written in the
-- event's own transaction.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        TEXT NOT NULL,
    destination     TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_state ON deliveries (state, id);

CREATE TABLE attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id BIGINT NOT NULL,
    at          TEXT NOT NULL,
    status      INTEGER,
    latency_ms  BIGINT NOT NULL,
    error       TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
