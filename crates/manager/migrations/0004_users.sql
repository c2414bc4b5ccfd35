-- Migration 4: roles for API tokens; console users and their sessions.
ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    -- argon2id, PHC string format (salt and parameters included)
    password TEXT NOT NULL,
    created TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    -- SHA-256 of the session id (the cookie holds the id)
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created TEXT NOT NULL,
    seen TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user);
