//! What the manager's policy says about which verified version a host takes: pins, the
//! channel, rollout holds and withheld versions, and the maintenance window.

use std::collections::BTreeMap;

use model::protocol::{Channel, MaintenanceWindow, Policy};
use model::Version;
use serde::Serialize;

/// What the manager's policy says about which *verified* version to take: it chooses among the
/// versions the signed metadata lists, never adds one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// component → the version to run (wins over everything else when it is offered).
    pub pinned: BTreeMap<String, String>,
    /// `latest`, or `n-1`: the newest version but one (an unknown channel is `latest`).
    pub channel: Channel,
    /// component → take no version at or above it (a rollout has not released it here yet).
    pub holds: BTreeMap<String, String>,
    /// component → versions never to take (rolled back or aborted).
    pub withheld: BTreeMap<String, Vec<String>>,
    /// When engines, programs and patches may be installed (none: any time).
    pub maintenance: Option<MaintenanceWindow>,
}

impl Selection {
    pub fn from_policy(p: Option<&Policy>) -> Self {
        p.map(|p| Selection {
            pinned: p.pinned.clone(),
            channel: p.channel.clone(),
            holds: p.holds.clone(),
            withheld: p.withheld.clone(),
            maintenance: p.maintenance.clone(),
        })
        .unwrap_or_default()
    }

    /// Whether the maintenance window is open at `now` (by this host's clock, in the window's
    /// time zone or offset); always without a window, never with an invalid one.
    pub fn window_open(&self, now: time::OffsetDateTime) -> bool {
        self.maintenance
            .as_ref()
            .is_none_or(|w| w.is_open(now.unix_timestamp()))
    }

    /// Whether `version` of `component` is withheld (numerically; a withheld spelling that is
    /// not a version is compared as text).
    fn withheld(&self, component: &str, version: &str) -> bool {
        self.withheld.get(component).is_some_and(|ws| {
            ws.iter().any(
                |w| match (w.parse::<Version>(), version.parse::<Version>()) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => w == version,
                },
            )
        })
    }

    /// Whether a hold keeps `version` of `component` away: it is at or above the hold (a hold
    /// that is not a version keeps every version away: fail closed).
    fn held(&self, component: &str, version: &Version) -> bool {
        self.holds
            .get(component)
            .is_some_and(|h| h.parse::<Version>().map_or(true, |h| version >= &h))
    }

    /// Whether a new install of `version` of `component` (for patches: applying it) is allowed.
    pub fn allows(&self, component: &str, text: &str, version: &Version) -> bool {
        !self.withheld(component, text) && !self.held(component, version)
    }

    /// The version of `component` to run among the `offered` ones (version text → parsed
    /// version and anything else), `installed` being the one it runs now: the pin if offered;
    /// else the channel's choice among all signed versions (`n-1`: the newest but one), lowered
    /// past withheld versions and below a hold. A hold never takes a host below the version it
    /// already runs (a rollout holds back, it does not downgrade); a withheld one does.
    pub fn choose<'v, X>(
        &self,
        component: &str,
        offered: &'v BTreeMap<&'v str, (Version, X)>,
        installed: Option<&str>,
    ) -> Option<&'v str> {
        if let Some(pin) = self.pinned.get(component) {
            return offered.get_key_value(pin.as_str()).map(|(k, _)| *k);
        }
        let mut all: Vec<(&'v str, &'v Version)> =
            offered.iter().map(|(k, (v, _))| (*k, v)).collect();
        all.sort_by(|a, b| b.1.cmp(a.1));
        let skip = usize::from(self.channel == Channel::Previous && all.len() > 1);
        all.into_iter()
            .skip(skip)
            .find(|(k, v)| {
                !self.withheld(component, k) && (Some(*k) == installed || !self.held(component, v))
            })
            .map(|(k, _)| k)
    }
}
