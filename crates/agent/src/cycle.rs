//! One update cycle: recover from a crash, refresh (failover, catch-up), plan, apply, write the
//! status. What the cycle works with (the policy, read once; the sources passed over) is in one
//! [`Cycle`] value that lives as long as the cycle.

use std::collections::BTreeMap;

use crate::config::ProductConfig;
use crate::error::Result;
use crate::install::{now, run_command};
use crate::ledger::Ledger;
use crate::manager::Policy;
use crate::plan::{self, Basis, Content, Selection, MAX_ROLES};
use crate::sources::{behind_trusted, Downloads, Refreshed};
use crate::state::Status;
use crate::{journal, Agent, AgentConfig, CycleReport};
use model::protocol::Channel;

/// What one cycle works with: read once at its start, or found along the way.
#[derive(Debug)]
pub(crate) struct Cycle {
    /// The manager's policy as this cycle applies it.
    pub policy: Option<Policy>,
    /// Update sources in the order they are tried; `true` marks the origin (direct fallback).
    pub sources: Vec<(String, bool)>,
    /// Sources rejected this cycle, with why (reported in the status).
    pub rejected: Vec<String>,
    /// Sources found behind another source or the trusted state (reported in the status).
    pub lagging: Vec<String>,
    /// Targets rebuilt from deltas, or why deltas offered were not used (reported in the
    /// status).
    pub deltas: Vec<String>,
}

impl Cycle {
    pub fn new(config: &AgentConfig, policy: Option<Policy>) -> Self {
        Cycle {
            sources: config.sources_with(policy.as_ref()),
            policy,
            rejected: Vec::new(),
            lagging: Vec::new(),
            deltas: Vec::new(),
        }
    }

    /// What the policy says about which verified version to take (pins, channel, holds).
    pub fn selection(&self) -> Selection {
        Selection::from_policy(self.policy.as_ref())
    }

    /// A source that did not answer usefully: lagging (behind the trusted state) or rejected.
    pub fn passed_over(&mut self, base: &str, e: &tuf::Error) {
        if let Some(lag) = behind_trusted(base, e) {
            tracing::warn!(source = %node::url::Redacted(base), "{}; trying the next", node::url::redact(&lag));
            self.lagging.push(lag);
        } else {
            tracing::warn!(source = %node::url::Redacted(base), error = %node::url::Redacted(e), "update source rejected; trying the next");
            self.rejected.push(format!("rejected {base}: {e}"));
        }
    }
}

/// The digest of what, besides the timestamp, decides a cycle's plan: the policy's selection
/// (pins, channel, rollout holds) and the configuration's modules, products and platform. Recorded with the
/// timestamp version of a complete apply; when either differs the cycle plans again.
pub(crate) fn plan_digest(config: &AgentConfig, selection: &Selection) -> String {
    let modules: Vec<_> = config
        .modules
        .iter()
        .map(|m| (&m.name, &m.components, &m.install_dir))
        .collect();
    let products: Vec<_> = config
        .products
        .iter()
        .map(|p| (&p.name, &p.build, &p.build_command, &p.install_dir))
        .collect();
    let mut basis = serde_json::json!({
        "pinned": selection.pinned,
        "platform": config.platform,
        "modules": modules,
        "products": products,
    });
    // Added only when set, so that a digest recorded before channels and rollouts existed
    // still matches (an upgraded agent does not plan again for nothing).
    if selection.channel != Channel::Latest
        || !selection.holds.is_empty()
        || !selection.withheld.is_empty()
        || selection.maintenance.is_some()
    {
        basis["rollouts"] = serde_json::json!([
            selection.channel,
            selection.holds,
            selection.withheld,
            selection.maintenance
        ]);
    }
    tuf::crypto::sha256_hex(basis.to_string().as_bytes())
}

/// What carrying out a plan did: (component, version) installed, the patches, and what waits
/// for the maintenance window.
struct Applied {
    installed: Vec<(String, String)>,
    patches: crate::patches::PatchesDone,
    deferred: Vec<String>,
}

impl Agent {
    /// The product's build now: as a patch left it, else as configured, else as its
    /// `build_command` prints it.
    pub(crate) fn current_build(
        &self,
        p: &ProductConfig,
        ledger: &Ledger,
    ) -> std::result::Result<String, String> {
        if let Some(b) = ledger.builds.get(&p.name) {
            return Ok(b.clone());
        }
        if let Some(b) = &p.build {
            return Ok(b.clone());
        }
        match &p.build_command {
            Some(cmd) => {
                run_command(cmd).map(|o| o.lines().next().unwrap_or("").trim().to_string())
            }
            None => Err("no build configured".into()),
        }
    }

    /// One update cycle under `policy`: recover from a crash, refresh, plan and apply what is
    /// new, write the status (only when it changed).
    pub(crate) fn update(&self, policy: Option<Policy>) -> Result<CycleReport> {
        let mut cy = Cycle::new(&self.config, policy);
        let mut report = CycleReport {
            recovered: journal::recover(&self.state)?,
            ..CycleReport::default()
        };
        let retried = self.take_retries(cy.policy.as_ref())?;
        if let Some(r) = &report.recovered {
            tracing::warn!("{r}");
        }
        let previous = self.state.status()?;
        let refreshed = match self.refresh(&mut cy) {
            Ok(r) => r,
            Err(errors) => {
                report.status_written = self.unreachable(&cy, &previous, &errors)?;
                return Ok(report);
            }
        };
        report.source = Some(refreshed.source.clone());
        report.timestamp_unchanged = refreshed.unchanged;
        let digest = plan_digest(&self.config, &cy.selection());
        let ts_version = refreshed.up.timestamp_version();
        if refreshed.unchanged
            && previous.last_result == "ok"
            && previous.applied_timestamp == ts_version
            && previous.applied_plan == digest
            && report.recovered.is_none()
            && !retried
        {
            report.status_written = self.nothing_new(cy, &previous, &refreshed.source)?;
            return Ok(report);
        }
        self.plan_and_apply(cy, refreshed, &previous, digest, report)
    }

    /// Act on the policy's retry requests (each once): a version whose reload failed may be
    /// installed again. Whether one was forgotten.
    fn take_retries(&self, policy: Option<&Policy>) -> Result<bool> {
        let Some(retries) = policy.map(|p| &p.retry).filter(|r| !r.is_empty()) else {
            return Ok(false);
        };
        let mut ledger = self.state.ledger()?;
        let before = ledger.retried.clone();
        let forgot = ledger.take_retries(retries);
        if ledger.retried != before {
            self.state.save_ledger(&ledger)?;
        }
        if forgot {
            tracing::info!("an operator asked to retry a version whose reload failed");
        }
        Ok(forgot)
    }

    /// No source answered: keep what is installed, mark the modules offline with why.
    fn unreachable(
        &self,
        cy: &Cycle,
        previous: &Status,
        errors: &[(String, tuf::Error)],
    ) -> Result<bool> {
        let expired = errors
            .iter()
            .any(|(_, e)| matches!(e, tuf::Error::Expired { .. }));
        let mut status = Status {
            products: previous.products.clone(),
            ignored: previous.ignored.clone(),
            lagging: cy.lagging.clone(),
            last_result: "failed".into(),
            last_success: previous.last_success.clone(),
            errors: errors.iter().map(|(s, e)| format!("{s}: {e}")).collect(),
            ..Status::default()
        };
        let reason = if expired {
            let since = previous.metadata_expired_since.clone().unwrap_or_else(now);
            status.metadata_expired_since = Some(since.clone());
            format!("signature metadata expired (since {since})")
        } else {
            let since = previous.unreachable_since.clone().unwrap_or_else(now);
            status.unreachable_since = Some(since.clone());
            format!("update source unreachable since {since}")
        };
        status.modules = self.module_status(Some(&reason))?;
        self.state.save_status(&status)
    }

    /// Nothing changed upstream or in the plan's basis and the last cycle finished: nothing to
    /// do, nothing to write (unless a source was rejected on the way: that is reported).
    fn nothing_new(&self, cy: Cycle, previous: &Status, source: &str) -> Result<bool> {
        let status = Status {
            source: Some(source.to_string()),
            last_result: "ok".into(),
            last_success: previous.last_success.clone(),
            products: previous.products.clone(),
            ignored: previous.ignored.clone(),
            lagging: cy.lagging,
            rejected: if cy.rejected.is_empty() {
                previous.rejected.clone()
            } else {
                cy.rejected
            },
            applied_timestamp: previous.applied_timestamp,
            applied_plan: previous.applied_plan.clone(),
            modules: self.module_status(None)?,
            ..Status::default()
        };
        self.state.save_status(&status)
    }

    /// List the content, plan, apply, and write the status.
    fn plan_and_apply(
        &self,
        mut cy: Cycle,
        mut refreshed: Refreshed,
        previous: &Status,
        digest: String,
        mut report: CycleReport,
    ) -> Result<CycleReport> {
        let listing = refreshed.up.all_targets(MAX_ROLES)?;
        let deltas = node::delta::Deltas::from_listing(&listing.targets)
            .with_budget(self.config.delta_memory_mib.saturating_mul(1 << 20));
        let content = plan::authorised_content(listing);
        let ts_version = refreshed.up.timestamp_version();
        let selection = cy.selection();
        let mut errors = Vec::new();
        let (retry, deferred) = {
            let held = Box::new(|path: &str| self.held(path));
            let markers = self.state.dir.join("delta-rebuild");
            let (up, source) = (&mut refreshed.up, &refreshed.source);
            let mut dl = Downloads::new(up, source, &mut cy, deltas, held, markers);
            let applied = self.apply_plan(&content, &selection, &mut dl, &mut errors)?;
            report.installed = applied.installed;
            report.patches = applied.patches.applied;
            (applied.patches.retry, applied.deferred)
        };
        let mut status = self.status_after(&cy, previous, &content, &errors, retry)?;
        status.source = Some(refreshed.source.clone());
        // What waits for the maintenance window is planned again every cycle until it opens.
        let waiting = !deferred.is_empty();
        status.deferred = deferred;
        if errors.is_empty() && !retry && !waiting {
            status.applied_timestamp = ts_version;
            status.applied_plan = digest;
        }
        status.errors = errors;
        status.deltas = std::mem::take(&mut cy.deltas);
        let changed = !report.installed.is_empty() || !report.patches.is_empty();
        // Keep reporting rejected sources until a later cycle downloads something again.
        status.rejected = if cy.rejected.is_empty() && !changed {
            previous.rejected.clone()
        } else {
            cy.rejected
        };
        if changed || previous.last_result != status.last_result {
            status.last_success = Some(now());
        }
        report.status_written = self.state.save_status(&status)?;
        Ok(report)
    }

    /// Plan from the state as it is now, then carry the plan out.
    fn apply_plan(
        &self,
        content: &Content,
        selection: &Selection,
        dl: &mut Downloads<'_>,
        errors: &mut Vec<String>,
    ) -> Result<Applied> {
        let installed = self.state.installed()?;
        let ledger = self.state.ledger()?;
        let builds = self.builds(&ledger);
        let basis = Basis {
            modules: &self.config.modules,
            products: &self.config.products,
            platform: &self.config.platform,
            selection,
            in_window: selection.window_open(node::clock::now()),
            installed: &installed,
            ledger: &ledger,
            builds: &builds,
        };
        let plan = plan::plan(content, &basis);
        let done = self.apply_modules(&plan.modules, dl, errors)?;
        let patches = self.apply_patches(&plan.products, dl, errors)?;
        for d in &plan.deferred {
            tracing::info!(what = %d, "waits for the maintenance window");
        }
        Ok(Applied {
            installed: done,
            patches,
            deferred: plan.deferred,
        })
    }

    /// Every configured product's build now (or why it is unknown).
    fn builds(&self, ledger: &Ledger) -> BTreeMap<String, std::result::Result<String, String>> {
        self.config
            .products
            .iter()
            .map(|p| (p.name.clone(), self.current_build(p, ledger)))
            .collect()
    }

    /// The status after applying: result, builds, ignored targets, module status.
    fn status_after(
        &self,
        cy: &Cycle,
        previous: &Status,
        content: &Content,
        errors: &[String],
        retry: bool,
    ) -> Result<Status> {
        let mut status = Status {
            products: previous.products.clone(),
            ignored: content.ignored.clone(),
            lagging: cy.lagging.clone(),
            last_success: previous.last_success.clone(),
            applied_timestamp: previous.applied_timestamp,
            applied_plan: previous.applied_plan.clone(),
            last_result: if !errors.is_empty() {
                "failed".into()
            } else if retry {
                // A patch waits for its preflight checks: evaluate again next cycle.
                "retry".into()
            } else {
                "ok".into()
            },
            ..Status::default()
        };
        let ledger = self.state.ledger()?;
        for (p, b) in self.builds(&ledger) {
            if let Ok(b) = b {
                status.products.insert(p, b);
            }
        }
        status.modules = self.module_status(None)?;
        Ok(status)
    }
}
