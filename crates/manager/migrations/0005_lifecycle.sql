-- Migration 5: revoking enrolment tokens and hosts; retries of a version a host failed on.
ALTER TABLE enroll_tokens ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
-- When the host was revoked: its credential no longer authenticates.
ALTER TABLE hosts ADD COLUMN revoked TEXT;
-- An operator asked a host to try a version again. Handed to the host in its policy until the
-- host acknowledges it (its heartbeat's applied policy names the id) or ignored it three times.
CREATE TABLE host_retries (
    id TEXT PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    requested TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    UNIQUE (host_id, component, version)
);
