-- Migration 1: tokens, groups, hosts, hotfix history, advisories, audit log.
CREATE TABLE admin_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE enroll_tokens (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    grp TEXT NOT NULL,
    expires TEXT,
    uses_left INTEGER,
    created TEXT NOT NULL
);
CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    parent TEXT,
    relays TEXT NOT NULL DEFAULT '[]',
    poll_interval INTEGER NOT NULL DEFAULT 300,
    allow_direct INTEGER NOT NULL DEFAULT 0,
    pinned TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    cred_hash TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    role TEXT NOT NULL,
    grp TEXT NOT NULL,
    enrolled TEXT NOT NULL,
    last_seen TEXT,
    upstream TEXT,
    builds TEXT NOT NULL DEFAULT '{}',
    components TEXT NOT NULL DEFAULT '{}',
    modules TEXT NOT NULL DEFAULT '[]',
    last_result TEXT,
    applied_policy TEXT
);
CREATE INDEX hosts_grp ON hosts (grp);
CREATE TABLE hotfix_history (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL,
    time TEXT NOT NULL,
    patch_id TEXT NOT NULL,
    product TEXT NOT NULL,
    from_build TEXT NOT NULL,
    to_build TEXT NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX hotfix_host ON hotfix_history (host_id);
CREATE INDEX hotfix_patch ON hotfix_history (patch_id);
CREATE TABLE advisories (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    role TEXT NOT NULL,
    product TEXT NOT NULL,
    affected TEXT NOT NULL,
    fixed TEXT,
    created TEXT NOT NULL
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
