//! People: console users (argon2id password hashes), their sessions, and the role every
//! person's credential carries (users and API tokens alike): `auditor` reads everything,
//! including the audit log; `operator` also acts on rollouts, groups and policy, advisories and
//! hosts; `admin` also manages users and tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::rand::SecureRandom;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{hash, new_secret, now, sql, Db};
use crate::error::{Error, Result};

/// What a person may do; each role may do everything of the roles below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    Auditor,
    Operator,
    Admin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::Auditor => "auditor",
            UserRole::Operator => "operator",
            UserRole::Admin => "admin",
        }
    }
}

impl std::fmt::Display for UserRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for UserRole {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auditor" => Ok(UserRole::Auditor),
            "operator" => Ok(UserRole::Operator),
            "admin" => Ok(UserRole::Admin),
            other => Err(bad(
                "role",
                format!(
                    "{:?} is not auditor, operator or admin",
                    crate::text::escape(other)
                ),
            )),
        }
    }
}

/// A person, as the API and the console know them: a user's or an API token's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub role: UserRole,
}

/// A console user (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: UserRole,
    pub created: String,
    pub disabled: bool,
}

/// A signed-in session: who, and the token every state-changing form must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub person: Person,
    pub csrf: String,
}

/// Seconds a session lives without a request.
pub const SESSION_IDLE: i64 = 30 * 60;
/// Seconds a session lives at most.
pub const SESSION_MAX: i64 = 12 * 3600;
/// Sessions one user may have at once (signing in again ends the oldest).
pub const SESSIONS_PER_USER: i64 = 20;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted (hashing is memory-hard; the input stays bounded).
pub const MAX_PASSWORD: usize = 1024;

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

/// argon2id with the crate's defaults (19 MiB, 2 passes), a random salt.
fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::Other("no randomness".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Other(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Other(format!("cannot hash the password: {e}")))
}

fn password_matches(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, checked when the user does not exist so that a wrong name
/// costs the same time as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy: no user has this").unwrap_or_default())
}

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(bad(
            "password",
            format!("give {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

impl Db {
    /// Create a console user (`actor` is recorded in the audit log).
    pub fn create_user(
        &self,
        name: &str,
        role: UserRole,
        password: &str,
        actor: &str,
    ) -> Result<()> {
        crate::text::check_name("name", name, 64)?;
        if name.trim() != name {
            return Err(bad("name", "no leading or trailing spaces"));
        }
        check_password(password)?;
        let taken: Option<String> = self
            .conn()?
            .query_row(
                "SELECT name FROM users WHERE lower(name) = lower(?1)",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if let Some(other) = taken {
            return Err(bad(
                "name",
                format!("user {other:?} exists already (names ignore case)"),
            ));
        }
        let hashed = hash_password(password)?;
        let added = self
            .conn()?
            .execute(
                "INSERT OR IGNORE INTO users (name, role, password, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), hashed, now()],
            )
            .map_err(sql)?;
        if added == 0 {
            return Err(bad("name", format!("user {name:?} exists already")));
        }
        self.audit(actor, "user-create", &format!("{name} ({role})"))
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT name, role, created, disabled FROM users ORDER BY name")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(sql)?;
        rows.map(|row| {
            let (name, role, created, disabled) = row.map_err(sql)?;
            Ok(User {
                name,
                role: role.parse()?,
                created,
                disabled: disabled != 0,
            })
        })
        .collect()
    }

    /// Disable a user (and end their sessions), or enable them again.
    pub fn set_user_disabled(&self, name: &str, disabled: bool, actor: &str) -> Result<bool> {
        let c = self.conn()?;
        let n = c
            .execute(
                "UPDATE users SET disabled = ?2 WHERE name = ?1",
                params![name, disabled],
            )
            .map_err(sql)?;
        if disabled {
            c.execute("DELETE FROM sessions WHERE user = ?1", params![name])
                .map_err(sql)?;
        }
        drop(c);
        let what = if disabled {
            "user-disable"
        } else {
            "user-enable"
        };
        if n > 0 {
            self.audit(actor, what, name)?;
        }
        Ok(n > 0)
    }

    /// The person `name` if `password` is theirs and they are not disabled. Takes the time of a
    /// password check whether or not the user exists.
    pub fn check_login(&self, name: &str, password: &str) -> Result<Option<Person>> {
        if password.len() > MAX_PASSWORD {
            return Ok(None);
        }
        let row: Option<(String, String, i64)> = self
            .conn()?
            .query_row(
                "SELECT role, password, disabled FROM users WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((role, stored, disabled)) = row else {
            password_matches(decoy(), password);
            return Ok(None);
        };
        if !password_matches(&stored, password) || disabled != 0 {
            return Ok(None);
        }
        Ok(Some(Person {
            name: name.to_string(),
            role: role.parse()?,
        }))
    }

    /// Start a session for `person`: the id for the cookie (only its hash is stored).
    pub fn create_session(&self, person: &Person) -> Result<String> {
        let id = new_secret("upd_session")?;
        let csrf = new_secret("csrf")?;
        let t = now();
        let at = OffsetDateTime::now_utc();
        let cutoff = |secs: i64| tuf::metadata::format_expires(at - time::Duration::seconds(secs));
        let c = self.conn()?;
        // Bounded: expired sessions go, and a user keeps their newest sessions only.
        c.execute(
            "DELETE FROM sessions WHERE created < ?1 OR seen < ?2",
            params![cutoff(SESSION_MAX), cutoff(SESSION_IDLE)],
        )
        .map_err(sql)?;
        c.execute(
            "DELETE FROM sessions WHERE user = ?1 AND hash NOT IN
             (SELECT hash FROM sessions WHERE user = ?1 ORDER BY created DESC LIMIT ?2)",
            params![person.name, SESSIONS_PER_USER - 1],
        )
        .map_err(sql)?;
        c.execute(
            "INSERT INTO sessions (hash, user, csrf, created, seen) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![hash(&id), person.name, csrf, t],
        )
        .map_err(sql)?;
        Ok(id)
    }

    /// The live session with id `id` (its user still enabled), its idle time restarted; an
    /// expired one is removed.
    pub fn session(&self, id: &str, at: OffsetDateTime) -> Result<Option<Session>> {
        let c = self.conn()?;
        let row: Option<(String, String, String, String, String)> = c
            .query_row(
                "SELECT s.user, u.role, s.csrf, s.created, s.seen FROM sessions s
                 JOIN users u ON u.name = s.user WHERE s.hash = ?1 AND u.disabled = 0",
                params![hash(id)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((user, role, csrf, created, seen)) = row else {
            return Ok(None);
        };
        let age =
            |t: &str| tuf::metadata::parse_expires("session", t).map(|t| (at - t).whole_seconds());
        let live = matches!((age(&created), age(&seen)), (Ok(a), Ok(i)) if a <= SESSION_MAX && i <= SESSION_IDLE);
        if !live {
            c.execute("DELETE FROM sessions WHERE hash = ?1", params![hash(id)])
                .map_err(sql)?;
            return Ok(None);
        }
        // Restart the idle clock at most once a minute (one write, not one per page).
        if age(&seen).is_ok_and(|i| i >= 60) {
            c.execute(
                "UPDATE sessions SET seen = ?2 WHERE hash = ?1",
                params![hash(id), tuf::metadata::format_expires(at)],
            )
            .map_err(sql)?;
        }
        Ok(Some(Session {
            person: Person {
                name: user,
                role: role.parse()?,
            },
            csrf,
        }))
    }

    pub fn end_session(&self, id: &str) -> Result<()> {
        self.conn()?
            .execute("DELETE FROM sessions WHERE hash = ?1", params![hash(id)])
            .map_err(sql)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("m.db").to_str().unwrap()).unwrap();
        (dir, db)
    }

    #[test]
    fn passwords_are_checked_and_sessions_expire_idle_absolute_and_with_the_user() {
        let (_d, db) = db();
        let pw = "twelve chars at least";
        assert!(db
            .create_user("ann", UserRole::Operator, "short", "t")
            .is_err());
        db.create_user("ann", UserRole::Operator, pw, "t").unwrap();
        assert!(
            db.create_user("ann", UserRole::Admin, pw, "t").is_err(),
            "exists"
        );
        assert_eq!(db.check_login("ann", "wrong password!!").unwrap(), None);
        assert_eq!(db.check_login("bob", pw).unwrap(), None);
        let ann = db.check_login("ann", pw).unwrap().unwrap();
        assert_eq!(ann.role, UserRole::Operator);
        let id = db.create_session(&ann).unwrap();
        let now = OffsetDateTime::now_utc();
        let s = db.session(&id, now).unwrap().unwrap();
        assert_eq!(s.person, ann);
        // Idle past the limit: gone (and removed, so it stays gone).
        let idle = now + time::Duration::seconds(SESSION_IDLE + 1);
        assert_eq!(db.session(&id, idle).unwrap(), None);
        assert_eq!(db.session(&id, now).unwrap(), None);
        // Past the absolute limit even when used all along.
        let id = db.create_session(&ann).unwrap();
        let late = now + time::Duration::seconds(SESSION_MAX + 1);
        assert_eq!(db.session(&id, late).unwrap(), None);
        // A disabled user's sessions end at once.
        let id = db.create_session(&ann).unwrap();
        db.set_user_disabled("ann", true, "t").unwrap();
        assert_eq!(db.session(&id, now).unwrap(), None);
        assert_eq!(db.check_login("ann", pw).unwrap(), None);
        let stored: String = db
            .conn()
            .unwrap()
            .query_row("SELECT password FROM users WHERE name = 'ann'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
    }
}
