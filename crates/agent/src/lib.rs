//! The Updraft agent: keeps the host's modules supplied with verified content, applies patches
//! where the base build allows, records a hotfix history and says clearly what state the host is
//! in. Every byte installed was verified against signed metadata by the `tuf` client.

#[cfg(not(unix))]
compile_error!("the agent needs Unix: file operations under install directories use openat without following symlinks (crate `beneath`)");

pub mod beneath;
pub mod config;
pub mod error;
pub mod install;
pub mod manager;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use model::{ContentInfo, Kind, PatchId, Requirement, Version};
use tuf::{TargetInfo, TimestampUpdate, Updater, UpdaterConfig};

use beneath::{Beneath, Entry};
pub use config::{AgentConfig, ModuleConfig, ProductConfig};
pub use error::{Error, Result};
use install::{fault, now, run_command};
use state::{HistoryEntry, Journal, ModuleStatus, StateDir, Status};

/// A client refreshed from one source: the updater, the source, whether the timestamp was unchanged.
type Refreshed = (Updater<Arc<dyn tuf::Fetcher>>, String, bool);

/// What one cycle did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CycleReport {
    pub source: Option<String>,
    pub timestamp_unchanged: bool,
    pub installed: Vec<(String, String)>,
    pub patches: Vec<(String, String)>,
    pub recovered: Option<String>,
    pub status_written: bool,
    /// Why the heartbeat to the manager failed, if it did.
    pub manager_error: Option<String>,
}

/// An agent for one configuration.
pub struct Agent {
    pub config: AgentConfig,
    anchor: Vec<u8>,
    pub state: StateDir,
    fetcher: Arc<dyn tuf::Fetcher>,
    http: transport::HttpFetcher,
    /// Sources rejected during the current cycle, with why (reported in the status).
    rejected: std::cell::RefCell<Vec<String>>,
    /// Sources found behind another source during the current cycle (reported in the status).
    lagging: std::cell::RefCell<Vec<String>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What became of one patch in a cycle.
enum PatchResult {
    Applied(String),
    /// Waiting for preflight checks: evaluated again next cycle.
    Retry,
    /// Nothing to do (applied before, not applicable, failed and recorded).
    Done,
}

/// A target the delegation search authorised, with its content description bound to its path.
struct ContentTarget {
    info: ContentInfo,
    target: TargetInfo,
}

/// A patch published for a product.
type PatchTarget = ContentTarget;

/// One patch being applied to one product: what every phase records with.
struct PatchRun<'a> {
    p: &'a ProductConfig,
    id: String,
    /// The product's build before the patch, and the build the patch results in.
    build: String,
    to: String,
    paths: state::PatchPaths,
}

/// At most this many targets roles are loaded to list what the repository offers.
const MAX_ROLES: usize = 10_000;

/// At most this many ignored targets are named in the status (the rest are counted).
const IGNORED_SHOWN: usize = 20;

/// What the agent makes of one listing.
#[derive(Default)]
struct Content {
    /// Authorised targets whose `custom.updraft` is valid and agrees with their path.
    usable: Vec<ContentTarget>,
    /// Authorised targets with an invalid or disagreeing description, and why.
    invalid: Vec<(TargetInfo, model::Error)>,
    /// Lines for the status: everything not used (at most [`IGNORED_SHOWN`] named).
    ignored: Vec<String>,
}

/// The Updraft content the agent may act on: targets the delegation search authorised whose
/// `custom.updraft` agrees with their path. Everything else is ignored and reported.
fn authorised_content(listing: tuf::TargetListing) -> Content {
    let mut ignored: Vec<String> = listing
        .refused
        .iter()
        .map(|r| {
            format!(
                "ignored {} (listed by {}): {}",
                r.path,
                r.listed_by.join(", "),
                r.reason
            )
        })
        .collect();
    ignored.extend(listing.truncated.iter().map(|d| {
        format!("targets below delegation {d} not all listed: more than {MAX_ROLES} roles")
    }));
    let mut content = Content::default();
    for target in listing.targets {
        match ContentInfo::for_target(target.path(), target.custom()) {
            Ok(Some(info)) => content.usable.push(ContentTarget { info, target }),
            Ok(None) => {}
            Err(e) => {
                ignored.push(format!("ignored (signed by {}): {e}", target.role()));
                content.invalid.push((target, e));
            }
        }
    }
    for line in &ignored {
        tracing::warn!("{line}");
    }
    if ignored.len() > IGNORED_SHOWN {
        let more = ignored.len() - IGNORED_SHOWN;
        ignored.truncate(IGNORED_SHOWN);
        ignored.push(format!("{more} more targets ignored"));
    }
    content.ignored = ignored;
    content
}

impl Agent {
    pub fn new(config: AgentConfig) -> Result<Self> {
        let anchor = config.validate()?;
        let http = config.http_config()?;
        let http = transport::HttpFetcher::new(&http)?;
        let fetcher: Arc<dyn tuf::Fetcher> = Arc::new(http.clone());
        Ok(Agent {
            state: StateDir::new(&config.state_dir),
            config,
            anchor,
            fetcher,
            http,
            rejected: std::cell::RefCell::new(Vec::new()),
            lagging: std::cell::RefCell::new(Vec::new()),
        })
    }

    fn updater(&self, base: &str) -> Result<Updater<Arc<dyn tuf::Fetcher>>> {
        self.updater_with(base, true)
    }

    /// A client over `base`; with `persist` false it only verifies (a probe, see `catch_up`).
    fn updater_with(&self, base: &str, persist: bool) -> Result<Updater<Arc<dyn tuf::Fetcher>>> {
        let config = UpdaterConfig {
            keep_root_history: true,
            persist,
            ..UpdaterConfig::default()
        };
        Ok(Updater::new(
            self.state.tuf_dir(),
            &format!("{}/metadata", base.trim_end_matches('/')),
            self.anchor.clone(),
            self.fetcher.clone(),
            config,
        )?)
    }

    /// Refresh from the first source that answers, then catch up with any later relay that
    /// offers a newer verified timestamp (see [`Agent::catch_up`]). Returns the updater, its
    /// source and whether the timestamp was unchanged; or every source's error.
    fn refresh(&self) -> std::result::Result<Refreshed, Vec<(String, tuf::Error)>> {
        let sources = self.sources();
        let mut errors = Vec::new();
        for (i, (base, _direct)) in sources.iter().enumerate() {
            let mut up = match self.updater(base) {
                Ok(u) => u,
                Err(e) => {
                    errors.push((base.clone(), tuf::Error::Repository(e.to_string())));
                    continue;
                }
            };
            match up.refresh() {
                Ok(out) => {
                    let first = (
                        up,
                        base.clone(),
                        out.timestamp == TimestampUpdate::Unchanged,
                    );
                    // Later relays only: going to the origin is the fallback, not a comparison.
                    let later: Vec<&str> = sources
                        .iter()
                        .skip(i.saturating_add(1))
                        .filter(|(_, direct)| !direct)
                        .map(|(s, _)| s.as_str())
                        .collect();
                    return Ok(self.catch_up(first, &later));
                }
                Err(e) => {
                    if let Some(lag) = behind_trusted(base, &e) {
                        tracing::warn!(source = %base, "{lag}; trying the next");
                        self.lagging.borrow_mut().push(lag);
                    } else {
                        tracing::warn!(source = %base, error = %e, "update source rejected; trying the next");
                        self.rejected
                            .borrow_mut()
                            .push(format!("rejected {base}: {e}"));
                    }
                    errors.push((base.clone(), e));
                }
            }
        }
        Err(errors)
    }

    /// A source that answers may serve an old but valid view (a lagging relay). Compare it
    /// with every later relay by refreshing from each with the same trusted state: the full
    /// client workflow verifies what they offer (signatures, versions, rollback), and a newer
    /// verified timestamp makes that relay the source of this cycle. A relay behind the
    /// trusted state fails the rollback check and is reported as lagging; one that cannot be
    /// compared is reported as rejected.
    fn catch_up(&self, first: Refreshed, later: &[&str]) -> Refreshed {
        let mut best = first;
        let mut behind: Vec<(String, u64)> = Vec::new();
        for &other in later {
            let best_version = best.0.timestamp_version();
            let mut up = match self.updater_with(other, false) {
                Ok(u) => u,
                Err(e) => {
                    self.rejected
                        .borrow_mut()
                        .push(format!("not compared with {other}: {e}"));
                    continue;
                }
            };
            // A probe: verified but not persisted. Only a source that delivers everything the
            // cycle needs (root to every targets role of the listing) and is newer is adopted,
            // so a source that withholds part of a newer state never changes the trusted one.
            let probed = up
                .refresh()
                .and_then(|_| up.all_targets(MAX_ROLES).map(drop))
                .map(|()| up.timestamp_version())
                .and_then(|v| {
                    if v > best_version {
                        up.adopt().map(|()| v)
                    } else {
                        Ok(v)
                    }
                });
            match probed.map_err(|e| (e.timestamp_rollback(), e)) {
                Ok(v) => {
                    if v > best_version {
                        behind.push((best.1.clone(), best_version));
                        best = (up, other.to_string(), false);
                    }
                }
                Err((Some((got, _)), _)) => behind.push((other.to_string(), got)),
                Err((None, e)) => {
                    tracing::warn!(source = %other, error = %e, "could not compare with this source");
                    self.rejected
                        .borrow_mut()
                        .push(format!("not compared with {other}: {e}"));
                }
            }
        }
        let newest = best.0.timestamp_version();
        for (source, v) in behind {
            let msg = format!(
                "lagging {source}: {} timestamp version(s) behind {} (v{v} < v{newest})",
                newest.saturating_sub(v),
                best.1
            );
            tracing::warn!("{msg}");
            self.lagging.borrow_mut().push(msg);
        }
        best
    }

    fn current_build(
        &self,
        p: &ProductConfig,
        products: &state::Products,
    ) -> std::result::Result<String, String> {
        if let Some(b) = products.builds.get(&p.name) {
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

    /// Update sources: the manager's policy (relay list, direct fallback) over the file's.
    fn sources(&self) -> Vec<(String, bool)> {
        self.config
            .sources_with(manager::policy(&self.state).as_ref())
    }

    /// Seconds until the next poll: the manager's policy, else the configuration.
    pub fn poll_interval(&self) -> u64 {
        manager::policy(&self.state)
            .map(|p| p.poll_interval)
            .filter(|p| *p > 0)
            .unwrap_or(self.config.poll_interval)
    }

    /// One update cycle, then a heartbeat to the manager when one is configured.
    pub fn cycle(&self) -> Result<CycleReport> {
        let mut report = self.update_cycle()?;
        if let Some(url) = self.config.manager.clone() {
            match self.report(&url) {
                Ok(true) => {
                    // New policy (relays, pins): apply it at once, then report what was applied.
                    let mut status = self.state.status()?;
                    status.applied_timestamp = 0;
                    self.state.save_status(&status)?;
                    let again = self.update_cycle()?;
                    report.installed.extend(again.installed);
                    report.patches.extend(again.patches);
                    report.source = again.source.or(report.source);
                    if let Err(e) = self.report(&url) {
                        report.manager_error = Some(e.to_string());
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(manager = %url, error = %e, "heartbeat failed");
                    report.manager_error = Some(e.to_string());
                }
            }
        }
        Ok(report)
    }

    /// Heartbeat: enrol first if needed; store the policy in the reply. Returns whether the
    /// policy changed.
    fn report(&self, url: &str) -> Result<bool> {
        let mut id = match manager::identity(&self.state)? {
            Some(id) => id,
            None => {
                let token_file =
                    self.config.enroll_token_file.as_ref().ok_or_else(|| {
                        Error::Config("not enrolled and no enroll_token_file".into())
                    })?;
                manager::enroll(
                    &self.http,
                    &self.state,
                    url,
                    token_file,
                    &self.hostname(),
                    "agent",
                )?
            }
        };
        let status = self.state.status()?;
        let installed = self.state.installed()?;
        let history = self.state.history()?;
        let new_history: Vec<&state::HistoryEntry> =
            history.iter().skip(id.history_sent).take(1000).collect();
        let mut builds = status.products.clone();
        builds.insert("updraft".into(), env!("CARGO_PKG_VERSION").into());
        let body = serde_json::json!({
            "hostname": self.hostname(),
            "role": "agent",
            "upstream": status.source,
            "builds": builds,
            "components": installed.components.iter().map(|(c, i)| (c.clone(), i.version.clone())).collect::<BTreeMap<_, _>>(),
            "modules": status.modules,
            "history": new_history,
            // The result, with what went wrong and which sources were rejected and why.
            "last_result": std::iter::once(status.last_result.clone())
                .chain(status.errors.iter().cloned())
                .chain(status.rejected.iter().cloned())
                .chain(status.ignored.iter().cloned())
                .chain(status.lagging.iter().cloned())
                .collect::<Vec<_>>()
                .join("; "),
            "applied_policy": manager::policy(&self.state),
        });
        let policy = manager::heartbeat(&self.http, url, &id, &body)?;
        if !new_history.is_empty() {
            id.history_sent += new_history.len();
            manager::save_identity(&self.state, &id)?;
        }
        if let Some(p) = policy {
            if manager::save_policy(&self.state, &p)? {
                tracing::info!(group = %p.group, relays = ?p.relays, poll = p.poll_interval, "policy from the manager applied");
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn hostname(&self) -> String {
        self.config
            .hostname
            .clone()
            .unwrap_or_else(manager::hostname)
    }

    /// One update cycle: recover from a crash, refresh, install what is newer, apply patches,
    /// write the status (only when it changed).
    fn update_cycle(&self) -> Result<CycleReport> {
        self.rejected.borrow_mut().clear();
        self.lagging.borrow_mut().clear();
        let mut report = CycleReport {
            recovered: install::recover(&self.state)?,
            ..CycleReport::default()
        };
        if let Some(r) = &report.recovered {
            tracing::warn!("{r}");
        }
        let previous = self.state.status()?;
        let mut status = Status {
            products: previous.products.clone(),
            ignored: previous.ignored.clone(),
            ..Status::default()
        };
        let refreshed = self.refresh();
        status.lagging = self.lagging.borrow().clone();
        let (mut up, source, unchanged) = match refreshed {
            Ok(r) => r,
            Err(errors) => {
                let expired = errors
                    .iter()
                    .any(|(_, e)| matches!(e, tuf::Error::Expired { .. }));
                status.last_result = "failed".into();
                status.last_success = previous.last_success.clone();
                status.errors = errors.iter().map(|(s, e)| format!("{s}: {e}")).collect();
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
                report.status_written = self.state.save_status(&status)?;
                return Ok(report);
            }
        };
        report.source = Some(source.clone());
        report.timestamp_unchanged = unchanged;
        status.source = Some(source.clone());
        status.last_result = "ok".into();
        status.last_success = previous.last_success.clone();
        let ts_version = up.timestamp_version();
        status.applied_timestamp = previous.applied_timestamp;
        if unchanged
            && previous.last_result == "ok"
            && previous.applied_timestamp == ts_version
            && report.recovered.is_none()
        {
            // Nothing changed upstream and the last cycle finished: nothing to do, nothing to write
            // (unless a source was rejected on the way: that is reported).
            let rejected = std::mem::take(&mut *self.rejected.borrow_mut());
            status.rejected = if rejected.is_empty() {
                previous.rejected.clone()
            } else {
                rejected
            };
            status.modules = self.module_status(None)?;
            report.status_written = self.state.save_status(&status)?;
            return Ok(report);
        }
        let content = authorised_content(up.all_targets(MAX_ROLES)?);
        status.ignored = content.ignored.clone();
        // Target bytes are verified against the metadata just refreshed, so any source will do:
        // the one that answered first, then the others in order.
        let mut targets_urls = vec![format!("{}/targets", source.trim_end_matches('/'))];
        for (s, _) in self.sources() {
            let u = format!("{}/targets", s.trim_end_matches('/'));
            if !targets_urls.contains(&u) {
                targets_urls.push(u);
            }
        }
        let mut errors = Vec::new();
        report.installed =
            self.update_modules(&mut up, &content.usable, &targets_urls, &mut errors)?;
        let (patches, retry) =
            self.update_products(&mut up, &content, &targets_urls, &mut errors)?;
        report.patches = patches;
        let products = self.state.products()?;
        for p in &self.config.products {
            if let Ok(b) = self.current_build(p, &products) {
                status.products.insert(p.name.clone(), b);
            }
        }
        if !errors.is_empty() {
            status.last_result = "failed".into();
        } else if retry {
            // A patch waits for its preflight checks: evaluate again next cycle.
            status.last_result = "retry".into();
        }
        if errors.is_empty() && !retry {
            status.applied_timestamp = ts_version;
        }
        status.errors = errors;
        let rejected = std::mem::take(&mut *self.rejected.borrow_mut());
        // Keep reporting rejected sources until a later cycle downloads something again.
        status.rejected =
            if rejected.is_empty() && report.installed.is_empty() && report.patches.is_empty() {
                previous.rejected.clone()
            } else {
                rejected
            };
        if !report.installed.is_empty()
            || !report.patches.is_empty()
            || previous.last_result != status.last_result
        {
            status.last_success = Some(now());
        }
        status.modules = self.module_status(None)?;
        report.status_written = self.state.save_status(&status)?;
        Ok(report)
    }

    /// Status of every module from what is installed; `source_problem` marks them offline.
    fn module_status(&self, source_problem: Option<&str>) -> Result<Vec<ModuleStatus>> {
        let installed = self.state.installed()?;
        let failures = self.state.products()?.last_outcome;
        let mut out = Vec::new();
        for m in &self.config.modules {
            let mut components = BTreeMap::new();
            let mut reason = source_problem.map(str::to_string);
            for c in &m.components {
                let v = installed.components.get(c).map(|i| i.version.clone());
                if v.is_none() && reason.is_none() {
                    reason = Some(format!("component {c} never installed"));
                }
                if let Some(msg) = failures.get(&format!("reload:{}:{c}", m.name)) {
                    reason = Some(msg.clone());
                }
                components.insert(c.clone(), v);
            }
            out.push(ModuleStatus {
                name: m.name.clone(),
                status: if reason.is_some() {
                    "offline"
                } else {
                    "online"
                }
                .into(),
                reason,
                components,
            });
        }
        Ok(out)
    }

    /// Install the newest version of every component a module uses.
    fn update_modules(
        &self,
        up: &mut Updater<Arc<dyn tuf::Fetcher>>,
        targets: &[ContentTarget],
        targets_urls: &[String],
        errors: &mut Vec<String>,
    ) -> Result<Vec<(String, String)>> {
        // component -> version -> files
        let mut by_component: HashMap<String, BTreeMap<String, (Version, Vec<&TargetInfo>)>> =
            HashMap::new();
        for ContentTarget { info, target: t } in targets {
            if info.kind == Kind::Patch {
                continue;
            }
            if !info.platforms.is_empty()
                && !info.platforms.iter().any(|p| p == &self.config.platform)
            {
                continue;
            }
            let Ok(v) = info.version.parse::<Version>() else {
                continue;
            };
            let entry = by_component.entry(info.component.clone()).or_default();
            entry
                .entry(info.version.clone())
                .or_insert_with(|| (v, Vec::new()))
                .1
                .push(t);
        }
        let mut done = Vec::new();
        for m in &self.config.modules {
            let mut changed = false;
            let mut previous_state = Vec::new();
            for c in &m.components {
                let Some(versions) = by_component.get(c) else {
                    continue;
                };
                // A version pinned by the manager's policy wins over the newest.
                let pinned = manager::policy(&self.state).and_then(|p| p.pinned.get(c).cloned());
                let chosen = match &pinned {
                    Some(v) => versions.get_key_value(v),
                    None => versions.iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0)),
                };
                let Some((version, (_, files))) = chosen else {
                    continue;
                };
                let installed = self.state.installed()?;
                if installed
                    .components
                    .get(c)
                    .is_some_and(|i| &i.version == version)
                {
                    continue;
                }
                let mut products = self.state.products()?;
                let failed_key = format!("reload-failed:{c}:{version}");
                if products.last_outcome.contains_key(&failed_key) {
                    continue; // this version failed its reload: not retried every cycle
                }
                match self.install(up, m, c, version, files, targets_urls) {
                    Ok(()) => {
                        previous_state.push((
                            c.clone(),
                            installed.components.get(c).cloned(),
                            version.clone(),
                        ));
                        changed = true;
                        done.push((c.clone(), version.clone()));
                    }
                    Err(e) => {
                        tracing::error!(component = %c, version = %version, error = %e, "install failed");
                        errors.push(format!("{c} {version}: {e}"));
                    }
                }
                products
                    .last_outcome
                    .remove(&format!("reload:{}:{c}", m.name));
                self.state.save_products(&products)?;
            }
            if changed {
                if let Some(cmd) = &m.reload {
                    if let Err(out) = run_command(cmd) {
                        tracing::error!(module = %m.name, "reload failed; restoring the previous version");
                        self.restore(m, &previous_state)?;
                        let again = run_command(cmd)
                            .err()
                            .map(|e| format!(" (reload after restoring also failed: {e})"));
                        let mut products = self.state.products()?;
                        for (c, _, v) in &previous_state {
                            products
                                .last_outcome
                                .insert(format!("reload-failed:{c}:{v}"), out.clone());
                            products.last_outcome.insert(
                                format!("reload:{}:{c}", m.name),
                                format!(
                                    "reload failed: {out}{}",
                                    again.clone().unwrap_or_default()
                                ),
                            );
                        }
                        self.state.save_products(&products)?;
                        done.retain(|(c, _)| !previous_state.iter().any(|(p, _, _)| p == c));
                    }
                }
            }
        }
        Ok(done)
    }

    /// Download the files of `version` into the versions store (verified), then swap them in.
    fn install(
        &self,
        up: &mut Updater<Arc<dyn tuf::Fetcher>>,
        m: &ModuleConfig,
        component: &str,
        version: &str,
        files: &[&TargetInfo],
        targets_urls: &[String],
    ) -> Result<()> {
        let vdir = self.state.version_dir(component, version);
        let installed = self.state.installed()?;
        let mut names = Vec::new();
        for t in files {
            let name = t.path().rsplit('/').next().unwrap_or(t.path()).to_string();
            if name.is_empty() || name == "." || name == ".." || name.starts_with(".updraft-stage-")
            {
                return Err(Error::Other(format!(
                    "target {} has no usable file name",
                    t.path()
                )));
            }
            // Components of one module share its directory: a file another component owns is
            // never overwritten (nor later removed) by this one.
            if let Some((owner, _)) = installed.components.iter().find(|(c, i)| {
                c.as_str() != component && i.module == m.name && i.files.contains(&name)
            }) {
                return Err(Error::Other(format!(
                    "target {} refused: its file name {name} belongs to component {owner} of module {}; {component} {version} not installed",
                    t.path(),
                    m.name
                )));
            }
            let dest = vdir.join(&name);
            download(&self.rejected, up, t, &dest, targets_urls)?;
            names.push(name);
        }
        fault("install-after-stage");
        let prev = installed.components.get(component);
        let remove = prev
            .map(|p| {
                p.files
                    .iter()
                    .filter(|f| !names.contains(f))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let journal = Journal::Install {
            component: component.to_string(),
            module: m.name.clone(),
            install_dir: m.install_dir.clone(),
            version: version.to_string(),
            files: names,
            remove,
            previous: prev.map(|p| p.version.clone()),
            previous_files: prev.map(|p| p.files.clone()).unwrap_or_default(),
        };
        self.state.set_journal(&journal)?;
        install::apply_install(&self.state, &journal)?;
        tracing::info!(component, version, module = %m.name, "installed");
        // Keep only the current and previous versions in the store.
        let keep: Vec<String> = [Some(version.to_string()), prev.map(|p| p.version.clone())]
            .into_iter()
            .flatten()
            .collect();
        if let Ok(entries) = std::fs::read_dir(self.state.dir.join("versions").join(component)) {
            for e in entries.flatten() {
                if !keep.iter().any(|k| e.file_name().to_string_lossy() == *k) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }

    /// Put back the versions installed before this cycle (after a failed reload).
    fn restore(
        &self,
        m: &ModuleConfig,
        changes: &[(String, Option<state::InstalledComponent>, String)],
    ) -> Result<()> {
        for (component, before, _) in changes {
            let current = self.state.installed()?.components.get(component).cloned();
            match before {
                Some(b) => {
                    let journal = Journal::Install {
                        component: component.clone(),
                        module: m.name.clone(),
                        install_dir: m.install_dir.clone(),
                        version: b.version.clone(),
                        files: b.files.clone(),
                        remove: current
                            .map(|c| {
                                c.files
                                    .into_iter()
                                    .filter(|f| !b.files.contains(f))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        previous: b.previous.clone(),
                        previous_files: b.previous_files.clone(),
                    };
                    self.state.set_journal(&journal)?;
                    install::apply_install(&self.state, &journal)?;
                }
                None => {
                    if let Some(c) = current {
                        let dir = Beneath::open(&m.install_dir, true)?;
                        for f in &c.files {
                            dir.remove_file(f)?;
                        }
                    }
                    let mut installed = self.state.installed()?;
                    installed.components.remove(component);
                    self.state.save_installed(&installed)?;
                }
            }
        }
        Ok(())
    }

    fn record(
        &self,
        id: &str,
        product: &str,
        from: &str,
        to: &str,
        outcome: &str,
        message: String,
    ) -> Result<()> {
        let mut products = self.state.products()?;
        let key = format!("patch:{id}");
        if products.last_outcome.get(&key) == Some(&message) {
            return Ok(());
        }
        self.state.append_history(&HistoryEntry {
            time: now(),
            patch_id: id.to_string(),
            product: product.to_string(),
            from_build: from.to_string(),
            to_build: to.to_string(),
            outcome: outcome.to_string(),
            message: message.clone(),
        })?;
        products.last_outcome.insert(key, message);
        self.state.save_products(&products)
    }

    /// Record, once, that a signed patch target for `p` is refused because its description is
    /// invalid (e.g. a patch id that is a path): it is never downloaded or applied.
    fn refuse(
        &self,
        p: &ProductConfig,
        target: &str,
        info: &ContentInfo,
        why: &model::Error,
    ) -> Result<()> {
        // The id as published, bounded: it is only reported, never used as a name.
        let id: String = info
            .patch_id
            .as_deref()
            .unwrap_or("?")
            .chars()
            .take(model::MAX_PATCH_ID_LEN.saturating_mul(2))
            .collect();
        let products = self.state.products()?;
        let build = self
            .current_build(p, &products)
            .unwrap_or_else(|_| "?".into());
        tracing::error!(target, product = %p.name, error = %why, "patch target refused");
        self.record(
            &id,
            &p.name,
            &build,
            info.build.as_deref().unwrap_or("?"),
            "refused",
            format!(
                "refused {target}: {why}; it is not applied (the publisher must publish it again with valid fields)"
            ),
        )
    }

    /// Refuse (see [`Agent::refuse`]) every patch target for `p` whose `custom.updraft`
    /// description fails validation or disagrees with its path.
    fn refuse_invalid_patches(
        &self,
        p: &ProductConfig,
        invalid: &[(TargetInfo, model::Error)],
    ) -> Result<()> {
        for (t, why) in invalid {
            let info = match ContentInfo::parse_custom(t.custom()) {
                Some(Ok(info) | Err((info, _))) => info,
                None => continue,
            };
            if info.kind == Kind::Patch && info.product.as_deref() == Some(p.name.as_str()) {
                self.refuse(p, t.path(), &info, why)?;
            }
        }
        Ok(())
    }

    /// Apply every applicable patch of every configured product, oldest version first.
    fn update_products(
        &self,
        up: &mut Updater<Arc<dyn tuf::Fetcher>>,
        content: &Content,
        targets_urls: &[String],
        errors: &mut Vec<String>,
    ) -> Result<(Vec<(String, String)>, bool)> {
        let mut applied = Vec::new();
        let mut retry = false;
        for p in &self.config.products {
            self.refuse_invalid_patches(p, &content.invalid)?;
            let mut patches: Vec<PatchTarget> = content
                .usable
                .iter()
                .filter(|t| {
                    t.info.kind == Kind::Patch && t.info.product.as_deref() == Some(p.name.as_str())
                })
                .map(|t| PatchTarget {
                    info: t.info.clone(),
                    target: t.target.clone(),
                })
                .filter(|pt| {
                    pt.info.platforms.is_empty()
                        || pt.info.platforms.contains(&self.config.platform)
                })
                .collect();
            patches.sort_by(|a, b| {
                let va = a.info.version.parse::<Version>().ok();
                let vb = b.info.version.parse::<Version>().ok();
                va.cmp(&vb)
            });
            for pt in patches {
                match self.apply_patch(up, p, &pt, targets_urls) {
                    Ok(PatchResult::Applied(id)) => applied.push((p.name.clone(), id)),
                    Ok(PatchResult::Retry) => retry = true,
                    Ok(PatchResult::Done) => {}
                    Err(e) => errors.push(format!("patch for {}: {e}", p.name)),
                }
            }
        }
        Ok((applied, retry))
    }

    fn apply_patch(
        &self,
        up: &mut Updater<Arc<dyn tuf::Fetcher>>,
        p: &ProductConfig,
        pt: &PatchTarget,
        targets_urls: &[String],
    ) -> Result<PatchResult> {
        let Some(run) = self.patch_run(p, pt)? else {
            return Ok(PatchResult::Done);
        };
        if let Some(waiting) = self.check_patch(&run, &pt.info)? {
            return Ok(waiting);
        }
        let Some(files) = self.stage_patch(up, &run, pt, targets_urls)? else {
            return Ok(PatchResult::Done);
        };
        let result = self.swap_in_patch(&run, &files);
        remove_stage(&run.paths.stage);
        result
    }

    /// The patch `pt` for product `p` as one run: its id (a validated name: it names the working
    /// files under `patches/`, never a path), the product's build and the build it results in.
    /// `None` when there is nothing to do (already applied: success, no change) or the outcome
    /// is recorded (invalid id, unknown build).
    fn patch_run<'a>(
        &self,
        p: &'a ProductConfig,
        pt: &PatchTarget,
    ) -> Result<Option<PatchRun<'a>>> {
        let info = &pt.info;
        let to = info.build.clone().unwrap_or_default();
        let pid = match info.patch_id.as_deref().unwrap_or("").parse::<PatchId>() {
            Ok(pid) => pid,
            Err(e) => {
                self.refuse(p, pt.target.path(), info, &e)?;
                return Ok(None);
            }
        };
        let id = pid.to_string();
        let products = self.state.products()?;
        if products
            .applied
            .get(&p.name)
            .is_some_and(|a| a.contains(&id))
        {
            return Ok(None);
        }
        let build = match self.current_build(p, &products) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("cannot determine the build: {e}");
                self.record(&id, &p.name, "?", &to, "failed", msg)?;
                return Ok(None);
            }
        };
        let paths = self.state.patch_paths(&pid);
        Ok(Some(PatchRun {
            p,
            id,
            build,
            to,
            paths,
        }))
    }

    fn record_run(&self, run: &PatchRun<'_>, outcome: &str, message: String) -> Result<()> {
        self.record(&run.id, &run.p.name, &run.build, &run.to, outcome, message)
    }

    /// Applicability (`requires_build`) and preflight checks. `Some` ends the run: not
    /// applicable (recorded, done) or a preflight failed (recorded, retried next cycle).
    fn check_patch(&self, run: &PatchRun<'_>, info: &ContentInfo) -> Result<Option<PatchResult>> {
        let req_text = info.requires_build.clone().unwrap_or_default();
        let applicable = match (
            req_text.parse::<Requirement>(),
            run.build.parse::<Version>(),
        ) {
            (Ok(req), Ok(v)) => req.matches(&v),
            _ => false,
        };
        if !applicable {
            let msg = format!("not applicable: build {}, requires {req_text}", run.build);
            self.record_run(run, "not applicable", msg)?;
            return Ok(Some(PatchResult::Done));
        }
        for check in &run.p.preflight {
            if let Err(out) = run_command(check) {
                self.record_run(run, "preflight failed", format!("preflight failed: {out}"))?;
                return Ok(Some(PatchResult::Retry));
            }
        }
        Ok(None)
    }

    /// Download the archive (verified) and unpack it into the staging directory, within the
    /// configured limits. `None`: the archive was refused (recorded).
    fn stage_patch(
        &self,
        up: &mut Updater<Arc<dyn tuf::Fetcher>>,
        run: &PatchRun<'_>,
        pt: &PatchTarget,
        targets_urls: &[String],
    ) -> Result<Option<Vec<String>>> {
        let name = pt.target.path().rsplit('/').next().unwrap_or("patch");
        let zstd = name.ends_with(".zst") || name.ends_with(".tzst");
        let (archive, stage) = (&run.paths.archive, &run.paths.stage);
        download(&self.rejected, up, &pt.target, archive, targets_urls)?;
        match install::unpack_patch(archive, zstd, stage, &self.config.patch_limits) {
            Ok(files) => Ok(Some(files)),
            Err(e) => {
                let msg = match &e {
                    Error::PatchArchive { .. } => e.to_string(),
                    _ => format!("bad patch archive: {e}"),
                };
                tracing::error!(patch = %run.id, product = %run.p.name, error = %e, "patch archive refused");
                self.record_run(run, "failed", msg)?;
                Ok(None)
            }
        }
    }

    /// Back up what the staged files replace, journal the change, swap the files in, record the
    /// new build and restart the product; any failure restores the backup and is recorded.
    ///
    /// Every member is reached beneath the product's directory without following a symlink (see
    /// `beneath`): one planted there (`lib -> /etc`, `bin/scanner -> /etc/passwd`), or anything
    /// but a directory or regular file on a member's path, refuses the patch before anything
    /// changes.
    fn swap_in_patch(&self, run: &PatchRun<'_>, files: &[String]) -> Result<PatchResult> {
        let product = Beneath::open(&run.p.install_dir, true)?;
        let staged = Beneath::open(&run.paths.stage, false)?;
        let refused = |e: Error| -> Result<PatchResult> {
            tracing::error!(patch = %run.id, product = %run.p.name, error = %e, "patch refused");
            self.record_run(run, "failed", format!("refused, nothing changed: {e}"))?;
            Ok(PatchResult::Done)
        };
        let (mut replaced, mut added) = (Vec::new(), Vec::new());
        for rel in files {
            match product.entry(rel) {
                Ok(Entry::File) => replaced.push(rel.clone()),
                Ok(Entry::Missing) => added.push(rel.clone()),
                Err(e @ Error::UnsafePath { .. }) => return refused(e),
                Err(e) => return Err(e),
            }
        }
        // Back up what will be replaced, modes included.
        let backup = &run.paths.backup;
        if backup.exists() {
            std::fs::remove_dir_all(backup).map_err(|e| Error::io(backup, e))?;
        }
        let backed_up = Beneath::open(backup, true)?;
        for rel in &replaced {
            match backed_up.copy_from(&product, rel, None) {
                Ok(()) => {}
                // Changed since it was checked: still nothing changed in the product.
                Err(e @ Error::UnsafePath { .. }) => return refused(e),
                Err(e) => return Err(e),
            }
        }
        let journal = Journal::Patch {
            patch_id: run.id.clone(),
            product: run.p.name.clone(),
            install_dir: run.p.install_dir.clone(),
            backup_dir: backup.to_path_buf(),
            replaced,
            added,
            from_build: run.build.clone(),
            to_build: run.to.clone(),
        };
        self.state.set_journal(&journal)?;
        fault("patch-after-backup");
        for (i, rel) in files.iter().enumerate() {
            if let Err(e) = product.copy_from(&staged, rel, None) {
                // A member refused (a symlink planted since the check) or an I/O error: undo
                // what was swapped in from the backup.
                let not_restored = install::rollback_patch(&self.state, &journal)?;
                tracing::error!(patch = %run.id, product = %run.p.name, error = %e, "patch failed while swapping; backup restored");
                let msg = format!(
                    "could not apply, backup restored: {e}{}",
                    install::not_restored_text(&not_restored)
                );
                self.record_run(run, "failed", msg)?;
                return Ok(PatchResult::Done);
            }
            if i == 0 {
                fault("patch-mid-swap");
            }
        }
        product.sync();
        self.finish_patch(run, &journal)
    }

    /// Record the new build, restart the product (restoring the backup if that fails) and
    /// record the outcome; the journal is cleared once the patch is applied.
    fn finish_patch(&self, run: &PatchRun<'_>, journal: &Journal) -> Result<PatchResult> {
        let mut products = self.state.products()?;
        products.builds.insert(run.p.name.clone(), run.to.clone());
        let applied = products.applied.entry(run.p.name.clone()).or_default();
        applied.insert(run.id.clone());
        self.state.save_products(&products)?;
        fault("patch-before-restart");
        if let Some(cmd) = &run.p.restart {
            if let Err(out) = run_command(cmd) {
                let not_restored = install::rollback_patch(&self.state, journal)?;
                let again = run_command(cmd).err();
                let msg = format!(
                    "restart failed, backup restored: {out}{}{}",
                    again
                        .map(|e| format!(" (restart after restoring also failed: {e})"))
                        .unwrap_or_default(),
                    install::not_restored_text(&not_restored)
                );
                self.record_run(run, "failed", msg)?;
                return Ok(PatchResult::Done);
            }
        }
        let msg = format!("{} {} -> {}", run.p.name, run.build, run.to);
        self.record_run(run, "applied", msg)?;
        self.state.clear_journal()?;
        tracing::info!(patch = %run.id, product = %run.p.name, from = %run.build, to = %run.to, "patch applied");
        Ok(PatchResult::Applied(run.id.clone()))
    }
}

/// Download and verify a target into `dest` unless a verified copy is there, trying each source
/// in order: a source serving wrong bytes is skipped (and noted in `rejected`).
fn download(
    rejected: &std::cell::RefCell<Vec<String>>,
    up: &mut Updater<Arc<dyn tuf::Fetcher>>,
    t: &TargetInfo,
    dest: &std::path::Path,
    urls: &[String],
) -> Result<()> {
    if Updater::<Arc<dyn tuf::Fetcher>>::is_cached(t, dest) {
        return Ok(());
    }
    let mut errors = Vec::new();
    for url in urls {
        match up.download_target_to(t, dest, url) {
            Ok(()) => {
                rejected.borrow_mut().extend(errors);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(target = t.path(), source = %url, error = %e, "download rejected; trying the next source");
                errors.push(format!("rejected {url}: {e}"));
            }
        }
    }
    Err(Error::Other(format!(
        "{}: every source failed: {}",
        t.path(),
        errors.join("; ")
    )))
}

/// Remove a patch's staging directory once it is no longer needed (a leftover is only noted).
fn remove_stage(stage: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(stage) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %stage.display(), error = %e, "could not remove a patch staging directory");
        }
    }
}

/// Seconds to wait before the next poll: the interval plus up to 10 % random jitter.
pub fn next_poll(interval: u64) -> std::time::Duration {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let r = ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map(|()| u32::from_le_bytes(b))
        .unwrap_or(0);
    let jitter_ms = (interval * 100) as u128 * u128::from(r) / u128::from(u32::MAX);
    std::time::Duration::from_secs(interval) + std::time::Duration::from_millis(jitter_ms as u64)
}

/// Version of the timestamp an updater trusts (0 before any).
/// A source whose timestamp is older than the one already trusted is behind (lagging), not
/// tampered with: say so, with by how much.
fn behind_trusted(source: &str, e: &tuf::Error) -> Option<String> {
    let (got, trusted) = e.timestamp_rollback()?;
    Some(format!(
        "lagging {source}: {} timestamp version(s) behind the trusted state (serves v{got}, trusted v{trusted}; rollback refused)",
        trusted.saturating_sub(got)
    ))
}
