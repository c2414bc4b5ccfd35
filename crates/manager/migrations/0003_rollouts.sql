-- Migration 3: channels and maintenance windows per group, and staged rollouts.
ALTER TABLE groups ADD COLUMN channel TEXT NOT NULL DEFAULT 'latest';
ALTER TABLE groups ADD COLUMN maintenance TEXT;
CREATE TABLE rollouts (
    id INTEGER PRIMARY KEY,
    component TEXT NOT NULL,
    version TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    wave INTEGER NOT NULL DEFAULT 0,
    wave_started TEXT NOT NULL,
    -- When each released wave was released (JSON list, RFC 3339).
    wave_times TEXT NOT NULL DEFAULT '[]',
    -- When an administrator last resumed it: failures reported before are not counted again.
    resumed TEXT,
    approved INTEGER NOT NULL DEFAULT 0,
    rolled_back INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);
CREATE INDEX rollouts_state ON rollouts (state);
-- What hosts reported about a rollout's version: when they first ran it, and a failure.
CREATE TABLE rollout_hosts (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    host_id TEXT NOT NULL,
    took TEXT,
    failed TEXT,
    failed_at TEXT,
    -- The version does not apply to this host (a patch for another base build): not judged.
    skipped TEXT,
    PRIMARY KEY (rollout_id, host_id)
);
