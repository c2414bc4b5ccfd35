//! Storage on SQLite (WAL): versioned migrations, tokens and credentials stored as SHA-256
//! hashes, hosts, groups, hotfix history, advisories and the audit log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use ring::rand::SecureRandom;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Versioned schema migrations, applied in order; `PRAGMA user_version` records the last one.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_init.sql"))];

pub fn now() -> String {
    tuf::metadata::format_expires(time::OffsetDateTime::now_utc())
}

fn hash(token: &str) -> String {
    tuf::crypto::sha256_hex(token.as_bytes())
}

/// A new random secret with a readable prefix.
pub fn new_secret(prefix: &str) -> Result<String> {
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::Other("no randomness".into()))?;
    Ok(format!("{prefix}_{}", hex::encode(b)))
}

/// Parse `sqlite://PATH` (or a bare path).
pub fn sqlite_path(url: &str) -> Result<PathBuf> {
    if let Some(p) = url.strip_prefix("sqlite://") {
        return Ok(PathBuf::from(p));
    }
    if url.contains("://") {
        return Err(Error::Config(format!(
            "database URL {url:?} is not supported by this build: use sqlite://PATH"
        )));
    }
    Ok(PathBuf::from(url))
}

/// Policy a group hands to its hosts in heartbeat replies.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default)]
    pub name: String,
    /// "agent" or "relay".
    pub role: String,
    /// For relay groups: the parent relay group (its relays are this group's upstreams).
    #[serde(default)]
    pub parent: Option<String>,
    /// Ordered relay list (agents) or upstreams (relays).
    #[serde(default)]
    pub relays: Vec<String>,
    #[serde(default = "default_poll")]
    pub poll_interval: u64,
    #[serde(default)]
    pub allow_direct: bool,
    /// component → pinned version.
    #[serde(default)]
    pub pinned: BTreeMap<String, String>,
}

fn default_poll() -> u64 {
    300
}

/// One hotfix history entry as hosts report it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryEntry {
    pub time: String,
    pub patch_id: String,
    pub product: String,
    pub from_build: String,
    pub to_build: String,
    pub outcome: String,
    pub message: String,
}

/// A host as recorded from its heartbeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub id: String,
    pub hostname: String,
    pub role: String,
    pub group: String,
    pub enrolled: String,
    pub last_seen: Option<String>,
    pub upstream: Option<String>,
    pub builds: BTreeMap<String, String>,
    pub components: BTreeMap<String, String>,
    pub modules: serde_json::Value,
    pub last_result: Option<String>,
    pub applied_policy: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Advisory {
    pub id: String,
    pub title: String,
    /// "agent", "relay" or "any".
    pub role: String,
    pub product: String,
    /// Affected builds, e.g. "<9.5.1519" or ">=9.0,<9.5.1519".
    pub affected: String,
    #[serde(default)]
    pub fixed: Option<String>,
}

/// What a heartbeat updates.
#[derive(Debug, Clone)]
pub struct Beat {
    pub hostname: String,
    pub upstream: Option<String>,
    pub builds: BTreeMap<String, String>,
    pub components: BTreeMap<String, String>,
    pub modules: serde_json::Value,
    pub history: Vec<HistoryEntry>,
    pub last_result: Option<String>,
    pub applied_policy: Option<serde_json::Value>,
}

/// The database.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
}

fn sql(e: rusqlite::Error) -> Error {
    Error::Db(e.to_string())
}

impl Db {
    /// Open (creating) and migrate.
    pub fn open(url: &str) -> Result<Self> {
        let path = sqlite_path(url)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(&path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        let db = Db {
            conn: Mutex::new(conn),
        };
        db.migrate()?;
        Ok(db)
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Other("database lock poisoned".into()))
    }

    fn migrate(&self) -> Result<()> {
        let mut c = self.conn()?;
        let current: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        for (v, script) in MIGRATIONS {
            if *v > current {
                let tx = c.transaction().map_err(sql)?;
                tx.execute_batch(script).map_err(sql)?;
                tx.pragma_update(None, "user_version", v).map_err(sql)?;
                tx.commit().map_err(sql)?;
                tracing::info!(version = v, "database migrated");
            }
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.conn()?
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)
    }

    pub fn audit(&self, actor: &str, action: &str, detail: &str) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO audit (time, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
                params![now(), actor, action, detail],
            )
            .map_err(sql)?;
        Ok(())
    }

    pub fn audit_log(&self, limit: u32) -> Result<Vec<serde_json::Value>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT time, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?1")
            .map_err(sql)?;
        let rows = st
            .query_map(params![limit], |r| {
                Ok(serde_json::json!({"time": r.get::<_, String>(0)?, "actor": r.get::<_, String>(1)?,
                    "action": r.get::<_, String>(2)?, "detail": r.get::<_, String>(3)?}))
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    // --- administrator tokens ---

    pub fn create_admin_token(&self, name: &str) -> Result<String> {
        let token = new_secret("upd_admin")?;
        self.conn()?
            .execute(
                "INSERT INTO admin_tokens (name, hash, created) VALUES (?1, ?2, ?3)",
                params![name, hash(&token), now()],
            )
            .map_err(sql)?;
        self.audit("cli", "admin-token-create", name)?;
        Ok(token)
    }

    pub fn list_admin_tokens(&self) -> Result<Vec<(i64, String, String, bool)>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT id, name, created, revoked FROM admin_tokens ORDER BY id")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    pub fn revoke_admin_token(&self, id: i64) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "UPDATE admin_tokens SET revoked = 1 WHERE id = ?1",
                params![id],
            )
            .map_err(sql)?;
        self.audit("cli", "admin-token-revoke", &id.to_string())?;
        Ok(n > 0)
    }

    /// The name of the administrator holding `token`, if valid.
    pub fn admin(&self, token: &str) -> Result<Option<String>> {
        self.conn()?
            .query_row(
                "SELECT name FROM admin_tokens WHERE hash = ?1 AND revoked = 0",
                params![hash(token)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)
    }

    // --- enrolment ---

    pub fn create_enroll_token(
        &self,
        group: &str,
        expires_days: Option<u32>,
        uses: Option<u32>,
    ) -> Result<String> {
        if self.group(group)?.is_none() {
            return Err(Error::BadRequest {
                field: "group".into(),
                reason: format!("group {group:?} does not exist: create it first"),
            });
        }
        let token = new_secret("upd_enroll")?;
        let expires = expires_days.map(|d| {
            tuf::metadata::format_expires(
                time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)),
            )
        });
        self.conn()?
            .execute(
                "INSERT INTO enroll_tokens (hash, grp, expires, uses_left, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash(&token), group, expires, uses, now()],
            )
            .map_err(sql)?;
        self.audit("cli", "enroll-token-create", group)?;
        Ok(token)
    }

    /// Whether an enrolment token exists, is not expired and has uses left.
    pub fn enroll_token_valid(&self, token: &str) -> Result<bool> {
        let row: Option<(Option<String>, Option<i64>)> = self
            .conn()?
            .query_row(
                "SELECT expires, uses_left FROM enroll_tokens WHERE hash = ?1",
                params![hash(token)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
        Ok(row.is_some_and(|(e, u)| e.is_none_or(|e| e > now()) && u.is_none_or(|u| u > 0)))
    }

    /// Enrol a host with an enrolment token; returns (host id, credential).
    pub fn enroll(
        &self,
        token: &str,
        hostname: &str,
        role: &str,
    ) -> Result<Option<(String, String)>> {
        let mut c = self.conn()?;
        let tx = c.transaction().map_err(sql)?;
        let row: Option<(i64, String, Option<String>, Option<i64>)> = tx
            .query_row(
                "SELECT id, grp, expires, uses_left FROM enroll_tokens WHERE hash = ?1",
                params![hash(token)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(sql)?;
        let Some((id, group, expires, uses)) = row else {
            return Ok(None);
        };
        if expires.is_some_and(|e| e <= now()) || uses.is_some_and(|u| u <= 0) {
            return Ok(None);
        }
        if uses.is_some() {
            tx.execute(
                "UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE id = ?1",
                params![id],
            )
            .map_err(sql)?;
        }
        let host_id = new_secret("host")?[5..21].to_string();
        let cred = new_secret("upd_host")?;
        tx.execute(
            "INSERT INTO hosts (id, cred_hash, hostname, role, grp, enrolled) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![host_id, hash(&cred), hostname, role, group, now()],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO audit (time, actor, action, detail) VALUES (?1, ?2, 'enroll', ?3)",
            params![
                now(),
                format!("host {host_id}"),
                format!("{hostname} ({role}) in {group}")
            ],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Some((host_id, cred)))
    }

    /// (host id, group, role) for a host credential.
    pub fn host_by_credential(&self, cred: &str) -> Result<Option<(String, String, String)>> {
        self.conn()?
            .prepare_cached("SELECT id, grp, role FROM hosts WHERE cred_hash = ?1")
            .map_err(sql)?
            .query_row(params![hash(cred)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(sql)
    }

    // --- heartbeats ---

    pub fn heartbeat(&self, host_id: &str, b: &Beat) -> Result<()> {
        let mut c = self.conn()?;
        let tx = c.transaction().map_err(sql)?;
        let js = |v: &BTreeMap<String, String>| serde_json::to_string(v).unwrap_or_default();
        tx.prepare_cached(
            "UPDATE hosts SET hostname = ?2, last_seen = ?3, upstream = ?4, builds = ?5, components = ?6,
             modules = ?7, last_result = ?8, applied_policy = ?9 WHERE id = ?1",
        )
        .map_err(sql)?
        .execute(params![
            host_id,
            b.hostname,
            now(),
            b.upstream,
            js(&b.builds),
            js(&b.components),
            b.modules.to_string(),
            b.last_result,
            b.applied_policy.as_ref().map(|p| p.to_string()),
        ])
        .map_err(sql)?;
        for h in &b.history {
            tx.prepare_cached(
                "INSERT INTO hotfix_history (host_id, time, patch_id, product, from_build, to_build, outcome, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(sql)?
            .execute(params![host_id, h.time, h.patch_id, h.product, h.from_build, h.to_build, h.outcome, h.message])
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        Ok(())
    }

    // --- groups ---

    pub fn group(&self, name: &str) -> Result<Option<Group>> {
        self.conn()?
            .prepare_cached("SELECT name, role, parent, relays, poll_interval, allow_direct, pinned FROM groups WHERE name = ?1")
            .map_err(sql)?
            .query_row(params![name], row_group)
            .optional()
            .map_err(sql)
    }

    pub fn groups(&self) -> Result<Vec<Group>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT name, role, parent, relays, poll_interval, allow_direct, pinned FROM groups ORDER BY name")
            .map_err(sql)?;
        let rows = st.query_map([], row_group).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// Create or replace a group.
    pub fn put_group(&self, g: &Group, actor: &str) -> Result<()> {
        if g.name.is_empty() || g.name.len() > 100 {
            return Err(Error::BadRequest {
                field: "name".into(),
                reason: "1 to 100 characters".into(),
            });
        }
        if g.role != "agent" && g.role != "relay" {
            return Err(Error::BadRequest {
                field: "role".into(),
                reason: "agent or relay".into(),
            });
        }
        if let Some(p) = &g.parent {
            match self.group(p)? {
                Some(pg) if pg.role == "relay" => {}
                _ => {
                    return Err(Error::BadRequest {
                        field: "parent".into(),
                        reason: format!("parent {p:?} is not a relay group"),
                    })
                }
            }
            // No cycles in the relay tree.
            let mut cur = Some(p.clone());
            let mut seen = 0;
            while let Some(name) = cur {
                if name == g.name || seen > 1000 {
                    return Err(Error::BadRequest {
                        field: "parent".into(),
                        reason: "the relay tree would have a cycle".into(),
                    });
                }
                cur = self.group(&name)?.and_then(|x| x.parent);
                seen += 1;
            }
        }
        if g.poll_interval == 0 {
            return Err(Error::BadRequest {
                field: "poll_interval".into(),
                reason: "at least 1".into(),
            });
        }
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO groups (name, role, parent, relays, poll_interval, allow_direct, pinned)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    g.name,
                    g.role,
                    g.parent,
                    serde_json::to_string(&g.relays).unwrap_or_default(),
                    g.poll_interval as i64,
                    g.allow_direct,
                    serde_json::to_string(&g.pinned).unwrap_or_default()
                ],
            )
            .map_err(sql)?;
        self.audit(
            actor,
            "group-put",
            &serde_json::to_string(g).unwrap_or_default(),
        )
    }

    // --- hosts ---

    pub fn hosts(&self) -> Result<Vec<Host>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(
                "SELECT id, hostname, role, grp, enrolled, last_seen, upstream, builds, components, modules,
                 last_result, applied_policy FROM hosts ORDER BY hostname, id",
            )
            .map_err(sql)?;
        let rows = st.query_map([], row_host).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    pub fn host(&self, id: &str) -> Result<Option<Host>> {
        Ok(self.hosts()?.into_iter().find(|h| h.id == id))
    }

    pub fn history(
        &self,
        host_id: Option<&str>,
        patch_id: Option<&str>,
    ) -> Result<Vec<(String, HistoryEntry)>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(
                "SELECT host_id, time, patch_id, product, from_build, to_build, outcome, message FROM hotfix_history
                 WHERE (?1 IS NULL OR host_id = ?1) AND (?2 IS NULL OR patch_id = ?2) ORDER BY id",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![host_id, patch_id], |r| {
                Ok((
                    r.get(0)?,
                    HistoryEntry {
                        time: r.get(1)?,
                        patch_id: r.get(2)?,
                        product: r.get(3)?,
                        from_build: r.get(4)?,
                        to_build: r.get(5)?,
                        outcome: r.get(6)?,
                        message: r.get(7)?,
                    },
                ))
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    // --- advisories ---

    pub fn put_advisory(&self, a: &Advisory, actor: &str) -> Result<()> {
        if !matches!(a.role.as_str(), "agent" | "relay" | "any") {
            return Err(Error::BadRequest {
                field: "role".into(),
                reason: "agent, relay or any".into(),
            });
        }
        a.affected
            .parse::<model::Requirement>()
            .map_err(|e| Error::BadRequest {
                field: "affected".into(),
                reason: e.to_string(),
            })?;
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO advisories (id, title, role, product, affected, fixed, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![a.id, a.title, a.role, a.product, a.affected, a.fixed, now()],
            )
            .map_err(sql)?;
        self.audit(actor, "advisory-put", &a.id)
    }

    pub fn advisories(&self) -> Result<Vec<Advisory>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT id, title, role, product, affected, fixed FROM advisories ORDER BY id")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok(Advisory {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    role: r.get(2)?,
                    product: r.get(3)?,
                    affected: r.get(4)?,
                    fixed: r.get(5)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }
}

fn row_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        name: r.get(0)?,
        role: r.get(1)?,
        parent: r.get(2)?,
        relays: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        poll_interval: r.get::<_, i64>(4)?.max(1) as u64,
        allow_direct: r.get(5)?,
        pinned: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
    })
}

fn row_host(r: &rusqlite::Row<'_>) -> rusqlite::Result<Host> {
    Ok(Host {
        id: r.get(0)?,
        hostname: r.get(1)?,
        role: r.get(2)?,
        group: r.get(3)?,
        enrolled: r.get(4)?,
        last_seen: r.get(5)?,
        upstream: r.get(6)?,
        builds: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
        components: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or_default(),
        modules: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or(serde_json::Value::Null),
        last_result: r.get(10)?,
        applied_policy: r
            .get::<_, Option<String>>(11)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}
