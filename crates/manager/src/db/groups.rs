//! Groups: the policy each hands to its hosts, and the relay tree.

use std::collections::BTreeMap;

use model::protocol::{Channel, MaintenanceWindow, Policy, Role};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{role_column, sql, to_json_text, Db};
use crate::error::{Error, Result};
use crate::text;

/// A group of hosts and the policy it hands them in heartbeat replies (administrator input:
/// unknown fields are refused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default)]
    pub name: String,
    pub role: Role,
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
    /// Which signed version hosts take where no pin or rollout decides: `latest` or `n-1`.
    #[serde(default)]
    pub channel: Channel,
    /// When engines, programs and patches may be installed (none: any time).
    #[serde(default)]
    pub maintenance: Option<MaintenanceWindow>,
}

/// A change to some settings of a group (`POST /api/v1/groups/{name}/settings`): what is
/// absent stays as stored. The role is not among them (replace the group to change it), so a
/// change of one setting can neither wipe the relay list nor turn a relay group into an agent
/// group. `parent` and `maintenance` set to `null` remove them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent: Option<Option<String>>,
    /// The whole ordered relay list (agents) or upstreams (relays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relays: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_direct: Option<bool>,
    /// component → version pinned (added or changed; other pins stay).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pin: BTreeMap<String, String>,
    /// Components no longer pinned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpin: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub maintenance: Option<Option<MaintenanceWindow>>,
}

/// A field given (even as `null`): `Some(value)`.
fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl GroupSettings {
    /// `g` with these settings applied.
    pub fn apply(&self, mut g: Group) -> Result<Group> {
        if let Some(p) = &self.parent {
            g.parent = p.clone();
        }
        if let Some(r) = &self.relays {
            g.relays = r.clone();
        }
        if let Some(p) = self.poll_interval {
            g.poll_interval = p;
        }
        if let Some(d) = self.allow_direct {
            g.allow_direct = d;
        }
        for c in &self.unpin {
            if g.pinned.remove(c).is_none() {
                return Err(bad(&format!("unpin.{c}"), "is not pinned in this group"));
            }
        }
        g.pinned
            .extend(self.pin.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(c) = &self.channel {
            g.channel = c.clone();
        }
        if let Some(w) = &self.maintenance {
            g.maintenance = w.clone();
        }
        Ok(g)
    }
}

fn default_poll() -> u64 {
    300
}

/// Longest poll interval a group may set: one week, in seconds.
pub const MAX_POLL_INTERVAL: u64 = 7 * 24 * 3600;
/// Most relays and pins a group may list.
const MAX_RELAYS: usize = 100;
const MAX_PINS: usize = 1000;

impl Default for Group {
    fn default() -> Self {
        Group {
            name: String::new(),
            role: Role::Agent,
            parent: None,
            relays: Vec::new(),
            poll_interval: default_poll(),
            allow_direct: false,
            pinned: BTreeMap::new(),
            channel: Channel::Latest,
            maintenance: None,
        }
    }
}

impl Group {
    /// The policy this group hands its hosts. A relay group's upstreams are its parent group's
    /// relays; a root relay group hands none (its relays keep the upstreams they were configured
    /// with: the origin is not a group).
    pub fn policy(&self, parent: Option<&Group>) -> Policy {
        let relays = match self.role {
            Role::Relay => parent.map(|p| p.relays.clone()).unwrap_or_default(),
            Role::Agent => self.relays.clone(),
        };
        Policy {
            group: self.name.clone(),
            relays,
            poll_interval: self.poll_interval,
            allow_direct: self.allow_direct,
            pinned: self.pinned.clone(),
            channel: self.channel.clone(),
            holds: BTreeMap::new(),
            decision_lease: 0,
            withheld: BTreeMap::new(),
            maintenance: self.maintenance.clone(),
            retry: Vec::new(),
        }
    }
}

impl Group {
    /// Administrator input checked before it is stored: names without control characters,
    /// relay URLs http/https with a host, pins in the content model's syntax, a poll interval
    /// of 1 s to [`MAX_POLL_INTERVAL`].
    pub fn validate(&self) -> Result<()> {
        text::check_name("name", &self.name, 100)?;
        if let Some(p) = &self.parent {
            text::check_name("parent", p, 100)?;
        }
        if self.relays.len() > MAX_RELAYS {
            return Err(bad("relays", format!("at most {MAX_RELAYS}")));
        }
        for (i, r) in self.relays.iter().enumerate() {
            text::check_url(&format!("relays[{i}]"), r)?;
        }
        if !(1..=MAX_POLL_INTERVAL).contains(&self.poll_interval) {
            return Err(bad(
                "poll_interval",
                format!(
                    "{} s: give 1 to {MAX_POLL_INTERVAL} seconds",
                    self.poll_interval
                ),
            ));
        }
        if let Channel::Other(c) = &self.channel {
            return Err(bad(
                "channel",
                format!(
                    "{:?} is not a channel: give latest or n-1 (pins are per component)",
                    text::escape(c)
                ),
            ));
        }
        if let Some(w) = &self.maintenance {
            w.validate().map_err(|e| bad("maintenance", e))?;
        }
        if self.pinned.len() > MAX_PINS {
            return Err(bad("pinned", format!("at most {MAX_PINS} pins")));
        }
        for (c, v) in &self.pinned {
            model::check_component(c).map_err(|e| bad("pinned", e.to_string()))?;
            v.parse::<model::Version>()
                .map_err(|e| bad(&format!("pinned.{c}"), e.to_string()))?;
        }
        Ok(())
    }
}

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::BadRequest {
        field: field.into(),
        reason: reason.into(),
    }
}

const GROUP_COLUMNS: &str =
    "name, role, parent, relays, poll_interval, allow_direct, pinned, channel, maintenance";

impl Db {
    pub fn group(&self, name: &str) -> Result<Option<Group>> {
        self.conn()?
            .prepare_cached(&format!(
                "SELECT {GROUP_COLUMNS} FROM groups WHERE name = ?1"
            ))
            .map_err(sql)?
            .query_row(params![name], row_group)
            .optional()
            .map_err(sql)
    }

    pub fn groups(&self) -> Result<Vec<Group>> {
        let c = self.conn()?;
        let mut st = c
            .prepare(&format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY name"))
            .map_err(sql)?;
        let rows = st.query_map([], row_group).map_err(sql)?;
        rows.collect::<std::result::Result<_, _>>().map_err(sql)
    }

    /// Create or replace a group (validated); the audit log records the group as stored.
    pub fn put_group(&self, g: &Group, actor: &str) -> Result<()> {
        g.validate()?;
        if let Some(p) = &g.parent {
            self.check_parent(&g.name, p)?;
        }
        // A relay group that is a parent stays one (the tree, and the upgrade plan's order
        // from it, would lose its children).
        if g.role != Role::Relay {
            if let Some(child) = self
                .groups()?
                .iter()
                .find(|c| c.parent.as_ref() == Some(&g.name))
            {
                return Err(bad(
                    "role",
                    format!(
                        "group {:?} is the parent of {:?}: it stays a relay group",
                        g.name, child.name
                    ),
                ));
            }
        }
        let poll =
            i64::try_from(g.poll_interval).map_err(|_| bad("poll_interval", "out of range"))?;
        self.conn()?
            .execute(
                &format!("INSERT OR REPLACE INTO groups ({GROUP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    g.name,
                    g.role.as_str(),
                    g.parent,
                    to_json_text("relays", &g.relays)?,
                    poll,
                    g.allow_direct,
                    to_json_text("pinned", &g.pinned)?,
                    g.channel.as_str(),
                    g.maintenance
                        .as_ref()
                        .map(|w| to_json_text("maintenance", w))
                        .transpose()?,
                ],
            )
            .map_err(sql)?;
        let stored = self
            .group(&g.name)?
            .ok_or_else(|| Error::Db(format!("group {:?} not found after saving it", g.name)))?;
        self.audit(actor, "group-put", &to_json_text("group", &stored)?)
    }

    /// Change some settings of group `name` (validated like a whole group); the group as
    /// stored.
    pub fn update_group(&self, name: &str, settings: &GroupSettings, actor: &str) -> Result<Group> {
        let g = self
            .group(name)?
            .ok_or_else(|| Error::NotFound(format!("group {name:?}")))?;
        let g = settings.apply(g)?;
        self.put_group(&g, actor)?;
        self.group(name)?
            .ok_or_else(|| Error::Db(format!("group {name:?} not found after saving it")))
    }

    /// Delete group `name`; refused (naming them) while hosts are in it, groups name it as
    /// their parent, enrolment tokens that can still enrol are for it, or a rollout that is
    /// not finished names it in a wave.
    pub fn delete_group(&self, name: &str, actor: &str) -> Result<()> {
        if self.group(name)?.is_none() {
            return Err(Error::NotFound(format!("group {name:?}")));
        }
        let mut users = Vec::new();
        let hosts = self.count("SELECT COUNT(*) FROM hosts WHERE grp = ?1", name)?;
        if hosts > 0 {
            users.push(format!("{hosts} host(s) (delete or re-enrol them)"));
        }
        let children: Vec<String> = self
            .groups()?
            .into_iter()
            .filter(|c| c.parent.as_deref() == Some(name))
            .map(|c| format!("{:?}", c.name))
            .collect();
        if !children.is_empty() {
            users.push(format!("child group(s) {}", children.join(", ")));
        }
        let tokens: Vec<String> = self
            .enroll_tokens()?
            .into_iter()
            .filter(|t| t.group == name && t.state == "valid")
            .map(|t| t.id.to_string())
            .collect();
        if !tokens.is_empty() {
            users.push(format!(
                "enrolment token(s) {} (revoke them)",
                tokens.join(", ")
            ));
        }
        let rollouts: Vec<String> = self
            .active_rollouts()?
            .into_iter()
            .filter(|r| {
                r.spec
                    .waves
                    .iter()
                    .any(|w| w.groups.iter().any(|g| g == name))
            })
            .map(|r| r.id.to_string())
            .collect();
        if !rollouts.is_empty() {
            users.push(format!("rollout(s) {}", rollouts.join(", ")));
        }
        if !users.is_empty() {
            return Err(bad(
                "name",
                format!("group {name:?} is still used by {}", users.join("; ")),
            ));
        }
        self.conn()?
            .execute("DELETE FROM groups WHERE name = ?1", params![name])
            .map_err(sql)?;
        self.audit(actor, "group-delete", name)
    }

    fn count(&self, query: &str, arg: &str) -> Result<i64> {
        self.conn()?
            .query_row(query, params![arg], |r| r.get(0))
            .map_err(sql)
    }

    /// `parent` must be a relay group, and making it `name`'s parent must not close a cycle.
    fn check_parent(&self, name: &str, parent: &str) -> Result<()> {
        match self.group(parent)? {
            Some(pg) if pg.role == Role::Relay => {}
            _ => {
                return Err(bad(
                    "parent",
                    format!("parent {parent:?} is not a relay group"),
                ))
            }
        }
        let mut cur = Some(parent.to_string());
        let mut seen = 0;
        while let Some(ancestor) = cur {
            if ancestor == name || seen > 1000 {
                return Err(bad("parent", "the relay tree would have a cycle"));
            }
            cur = self.group(&ancestor)?.and_then(|x| x.parent);
            seen += 1;
        }
        Ok(())
    }
}

fn row_group(r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        name: r.get(0)?,
        role: role_column(r, 1)?,
        parent: r.get(2)?,
        relays: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        poll_interval: u64::try_from(r.get::<_, i64>(4)?.max(1)).unwrap_or(1),
        allow_direct: r.get(5)?,
        pinned: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
        channel: Channel::from(r.get::<_, String>(7)?),
        maintenance: r
            .get::<_, Option<String>>(8)?
            .and_then(|s| serde_json::from_str(&s).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_group_hands_its_parents_relays_an_agent_group_its_own() {
        let parent = Group {
            name: "core".into(),
            role: Role::Relay,
            relays: vec!["https://core".into()],
            ..Group::default()
        };
        let site = Group {
            name: "site".into(),
            role: Role::Relay,
            parent: Some("core".into()),
            relays: vec!["https://site".into()],
            poll_interval: 60,
            ..Group::default()
        };
        let p = site.policy(Some(&parent));
        assert_eq!((p.group.as_str(), p.poll_interval), ("site", 60));
        assert_eq!(p.relays, ["https://core"]);
        assert!(
            parent.policy(None).relays.is_empty(),
            "a root relay group hands no upstreams"
        );
        let agents = Group {
            name: "a".into(),
            relays: vec!["https://site".into()],
            allow_direct: true,
            ..Group::default()
        };
        let p = agents.policy(Some(&parent));
        assert_eq!(p.relays, ["https://site"]);
        assert!(p.allow_direct);
    }
}
