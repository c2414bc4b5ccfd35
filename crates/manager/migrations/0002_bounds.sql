-- Migration 2: hotfix history deduplicated (one row per distinct entry of a host), hostname
-- lookups for the duplicate-hostname flag.
DELETE FROM hotfix_history WHERE id NOT IN (
    SELECT MIN(id) FROM hotfix_history
    GROUP BY host_id, time, patch_id, product, from_build, to_build, outcome, message
);
CREATE UNIQUE INDEX hotfix_entry
    ON hotfix_history (host_id, time, patch_id, product, from_build, to_build, outcome, message);
CREATE INDEX hosts_hostname ON hosts (hostname);
