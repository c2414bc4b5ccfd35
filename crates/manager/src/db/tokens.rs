//! Administrator tokens, enrolment tokens and host credentials (all stored as SHA-256 hashes).

use model::protocol::{EnrollReply, Role};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::{hash, new_secret, now, role_column, sql, Db, Person, UserRole};
use crate::error::{Error, Result};

/// Longest validity of an enrolment token, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;

impl Db {
    // --- administrator tokens ---

    /// A new API token for a person named `name` with `role` (audited as the command line's).
    pub fn create_admin_token(&self, name: &str, role: UserRole) -> Result<String> {
        self.create_admin_token_by(name, role, "cli")
            .map(|(_, t)| t)
    }

    /// A new API token for a person named `name` with `role`: its id and the token (shown
    /// once; only its hash is stored). `actor` is recorded in the audit log.
    pub fn create_admin_token_by(
        &self,
        name: &str,
        role: UserRole,
        actor: &str,
    ) -> Result<(i64, String)> {
        crate::text::check_name("name", name, 64)?;
        let token = new_secret("upd_admin")?;
        let id = self.transaction(|tx| {
            tx.execute(
                "INSERT INTO admin_tokens (name, hash, created, role) VALUES (?1, ?2, ?3, ?4)",
                params![name, hash(&token), now(), role.as_str()],
            )
            .map_err(sql)?;
            let id = tx.last_insert_rowid();
            super::rollouts::audit_tx(
                tx,
                actor,
                "admin-token-create",
                &format!("{id}: {name} ({role})"),
            )?;
            Ok(id)
        })?;
        Ok((id, token))
    }

    /// Every API token (never the token itself).
    pub fn admin_tokens(&self) -> Result<Vec<AdminToken>> {
        let c = self.conn()?;
        let mut st = c
            .prepare("SELECT id, name, role, created, revoked FROM admin_tokens ORDER BY id")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, String>(2)?,
                    r.get(3)?,
                    r.get::<_, i64>(4)? != 0,
                ))
            })
            .map_err(sql)?;
        rows.map(|row| {
            let (id, name, role, created, revoked) = row.map_err(sql)?;
            Ok(AdminToken {
                id,
                name,
                role: role.parse()?,
                created,
                revoked,
            })
        })
        .collect()
    }

    pub fn list_admin_tokens(&self) -> Result<Vec<(i64, String, String, bool)>> {
        Ok(self
            .admin_tokens()?
            .into_iter()
            .map(|t| (t.id, t.name, t.created, t.revoked))
            .collect())
    }

    pub fn revoke_admin_token(&self, id: i64) -> Result<bool> {
        self.revoke_admin_token_by(id, "cli")
    }

    /// Revoke API token `id` (false: no such token); `actor` is recorded in the audit log.
    pub fn revoke_admin_token_by(&self, id: i64, actor: &str) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "UPDATE admin_tokens SET revoked = 1 WHERE id = ?1",
                params![id],
            )
            .map_err(sql)?;
        if n > 0 {
            self.audit(actor, "admin-token-revoke", &id.to_string())?;
        }
        Ok(n > 0)
    }

    /// The person holding API token `token`, if valid.
    pub fn admin(&self, token: &str) -> Result<Option<Person>> {
        let row: Option<(String, String)> = self
            .conn()?
            .query_row(
                "SELECT name, role FROM admin_tokens WHERE hash = ?1 AND revoked = 0",
                params![hash(token)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
        row.map(|(name, role)| {
            Ok(Person {
                name,
                role: role.parse()?,
            })
        })
        .transpose()
    }

    // --- enrolment ---

    /// A new enrolment token for `group` (audited as the command line's).
    pub fn create_enroll_token(
        &self,
        group: &str,
        expires_days: Option<u32>,
        uses: Option<u32>,
    ) -> Result<String> {
        self.create_enroll_token_by(group, expires_days, uses, "cli")
            .map(|(_, t)| t)
    }

    /// A new enrolment token for `group`, valid `expires_days` (none: for ever) for `uses`
    /// enrolments (none: unlimited): its id and the token (shown once; only its hash is
    /// stored). `actor` is recorded in the audit log.
    pub fn create_enroll_token_by(
        &self,
        group: &str,
        expires_days: Option<u32>,
        uses: Option<u32>,
        actor: &str,
    ) -> Result<(i64, String)> {
        if self.group(group)?.is_none() {
            return Err(Error::BadRequest {
                field: "group".into(),
                reason: format!("group {group:?} does not exist: create it first"),
            });
        }
        if let Some(d) = expires_days.filter(|d| !(1..=MAX_TOKEN_DAYS).contains(d)) {
            return Err(Error::BadRequest {
                field: "expires".into(),
                reason: format!("{d} days: give 1 to {MAX_TOKEN_DAYS} days, or none"),
            });
        }
        if uses == Some(0) {
            return Err(Error::BadRequest {
                field: "uses".into(),
                reason: "at least 1 (or none for unlimited)".into(),
            });
        }
        let token = new_secret("upd_enroll")?;
        let expires = expires_days.map(token_expiry).transpose()?;
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO enroll_tokens (hash, grp, expires, uses_left, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash(&token), group, expires, uses, now()],
            )
            .map_err(sql)?;
            let id = tx.last_insert_rowid();
            let detail = format!(
                "{id}: group {group:?}, expires {}, uses {}",
                expires.as_deref().unwrap_or("never"),
                uses.map_or("unlimited".to_string(), |u| u.to_string())
            );
            super::rollouts::audit_tx(tx, actor, "enroll-token-create", &detail)?;
            Ok((id, token))
        })
    }

    /// Every enrolment token (never the token itself), oldest first.
    pub fn enroll_tokens(&self) -> Result<Vec<EnrollToken>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(
                "SELECT id, grp, uses_left, expires, created, revoked FROM enroll_tokens ORDER BY id",
            )
            .map_err(sql)?;
        let t = now();
        let rows = st
            .query_map([], |r| {
                let expires: Option<String> = r.get(3)?;
                let uses_left: Option<i64> = r.get(2)?;
                let revoked = r.get::<_, i64>(5)? != 0;
                Ok(EnrollToken {
                    id: r.get(0)?,
                    group: r.get(1)?,
                    uses_left: uses_left.map(|u| u64::try_from(u).unwrap_or(0)),
                    state: token_state(revoked, expires.as_deref(), uses_left, &t)
                        .unwrap_or("valid")
                        .to_string(),
                    expires,
                    created: r.get(4)?,
                    revoked,
                })
            })
            .map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// Revoke enrolment token `id` (false: no such token): it enrols no further host; hosts it
    /// enrolled stay. `actor` is recorded in the audit log.
    pub fn revoke_enroll_token(&self, id: i64, actor: &str) -> Result<bool> {
        let n = self
            .conn()?
            .execute(
                "UPDATE enroll_tokens SET revoked = 1 WHERE id = ?1",
                params![id],
            )
            .map_err(sql)?;
        if n > 0 {
            self.audit(actor, "enroll-token-revoke", &id.to_string())?;
        }
        Ok(n > 0)
    }

    /// Whether an enrolment token exists, is not revoked or expired and has uses left.
    pub fn enroll_token_valid(&self, token: &str) -> Result<bool> {
        Ok(self.enroll_token_problem(token)?.is_none())
    }

    /// Why an enrolment token cannot enrol a host ("unknown", "revoked", "expired",
    /// "used up"), or `None` when it can.
    pub fn enroll_token_problem(&self, token: &str) -> Result<Option<&'static str>> {
        let row: Option<(i64, Option<String>, Option<i64>)> = self
            .conn()?
            .query_row(
                "SELECT revoked, expires, uses_left FROM enroll_tokens WHERE hash = ?1",
                params![hash(token)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql)?;
        Ok(match row {
            None => Some("unknown"),
            Some((revoked, e, u)) => token_state(revoked != 0, e.as_deref(), u, &now()),
        })
    }

    /// Enrol a host with an enrolment token: its id and credential, or `None` when the token is
    /// unknown, expired or used up. The token's group decides the role: a request for another
    /// role is refused (naming `role`) and uses nothing of the token.
    pub fn enroll(&self, token: &str, hostname: &str, role: Role) -> Result<Option<EnrollReply>> {
        self.transaction(|tx| {
            let Some(group) = take_enroll_use(tx, token)? else {
                return Ok(None);
            };
            let group_role = tx
                .query_row(
                    "SELECT role FROM groups WHERE name = ?1",
                    params![group],
                    |r| role_column(r, 0),
                )
                .optional()
                .map_err(sql)?;
            if group_role != Some(role) {
                return Err(Error::BadRequest {
                    field: "role".into(),
                    reason: match group_role {
                        Some(r) => format!("the enrolment token is for group {group:?} of {r}s, not {role}s"),
                        None => format!("the enrolment token's group {group:?} no longer exists"),
                    },
                });
            }
            let taken: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM hosts WHERE hostname = ?1",
                    params![hostname],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            let host_id = new_secret("host")?[5..21].to_string();
            let credential = new_secret("upd_host")?;
            tx.execute(
                "INSERT INTO hosts (id, cred_hash, hostname, role, grp, enrolled) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![host_id, hash(&credential), hostname, role.as_str(), group, now()],
            )
            .map_err(sql)?;
            let duplicate = if taken > 0 { " (duplicate hostname)" } else { "" };
            tx.execute(
                "INSERT INTO audit (time, actor, action, detail) VALUES (?1, ?2, 'enroll', ?3)",
                params![
                    now(),
                    format!("host {host_id}"),
                    format!("{hostname:?} ({role}) in {group}{duplicate}")
                ],
            )
            .map_err(sql)?;
            Ok(Some(EnrollReply {
                host_id,
                credential,
            }))
        })
    }

    /// The host holding a host credential (none once the host is revoked).
    pub fn host_by_credential(&self, cred: &str) -> Result<Option<HostCredential>> {
        self.conn()?
            .prepare_cached(
                "SELECT id, grp, role FROM hosts WHERE cred_hash = ?1 AND revoked IS NULL",
            )
            .map_err(sql)?
            .query_row(params![hash(cred)], |r| {
                Ok(HostCredential {
                    id: r.get(0)?,
                    group: r.get(1)?,
                    role: role_column(r, 2)?,
                })
            })
            .optional()
            .map_err(sql)
    }
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    pub id: i64,
    pub name: String,
    pub role: UserRole,
    pub created: String,
    pub revoked: bool,
}

/// An enrolment token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollToken {
    pub id: i64,
    pub group: String,
    /// Enrolments left (none: unlimited).
    pub uses_left: Option<u64>,
    /// When it expires (none: never).
    pub expires: Option<String>,
    pub created: String,
    pub revoked: bool,
    /// valid, revoked, expired or used up.
    pub state: String,
}

/// Why a token with these columns cannot enrol at time `now`, or `None`.
fn token_state(
    revoked: bool,
    expires: Option<&str>,
    uses_left: Option<i64>,
    now: &str,
) -> Option<&'static str> {
    if revoked {
        Some("revoked")
    } else if expires.is_some_and(|e| e <= now) {
        Some("expired")
    } else if uses_left.is_some_and(|u| u <= 0) {
        Some("used up")
    } else {
        None
    }
}

/// The host a credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCredential {
    pub id: String,
    pub group: String,
    /// The role it enrolled with.
    pub role: Role,
}

/// Count one use of a valid enrolment token; its group, or `None` if it is not valid.
fn take_enroll_use(tx: &Transaction<'_>, token: &str) -> Result<Option<String>> {
    let row: Option<(i64, String, Option<String>, Option<i64>)> = tx
        .query_row(
            "SELECT id, grp, expires, uses_left FROM enroll_tokens WHERE hash = ?1 AND revoked = 0",
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
    Ok(Some(group))
}

/// When a token valid for `days` from now expires; out of `1..=MAX_TOKEN_DAYS` is a bad request.
fn token_expiry(days: u32) -> Result<String> {
    let bad = || Error::BadRequest {
        field: "expires".into(),
        reason: format!("{days} days is out of range: give 1 to {MAX_TOKEN_DAYS} days"),
    };
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(bad());
    }
    let at = time::OffsetDateTime::now_utc()
        .checked_add(time::Duration::days(i64::from(days)))
        .ok_or_else(bad)?;
    Ok(tuf::metadata::format_expires(at))
}
