//! Fleet simulation of staged rollouts (issue 12). Prints figures; asserts nothing on timing.
//!
//! Real processes on 127.0.0.1: an origin (`updraft serve` of a repository made with
//! `updraft repo`), one relay syncing from it every second, and for each scenario a fresh
//! `updraft manager --rollout-tick 1` whose database has the hosts enrolled directly. The hosts
//! are tasks of this process (UPDRAFT_FLEET_HOSTS, default 2,000, at most 10,000), each cycling
//! every UPDRAFT_FLEET_POLL seconds (default 1) in the order of `agent::Agent::cycle`: a typed
//! `Heartbeat` with the host's credential (its reply's policy is the one the cycle follows), a
//! conditional GET of `timestamp.json` from the relay (on a change, the snapshot and targets it
//! names: their target paths are the versions published; not verified here, trust is benched
//! elsewhere), the version `agent::plan::Selection` chooses under that policy (holds,
//! withheld, pins, channel), and when that changed something, a second heartbeat. The bad version's reload fails
//! on UPDRAFT_FLEET_FAIL_PCT % of the hosts that take it (default 50): as an agent does, they
//! keep the previous version, their module goes offline and they report the version in
//! `failed_versions` ("reload failed: …"); the other hosts run it.
//!
//! Each rollout (3 waves: 1 %, 10 %, 100 %, each soaking UPDRAFT_FLEET_SOAK s, default 3) is
//! created through the admin API; its version is published UPDRAFT_FLEET_PUBLISH_AFTER s later
//! (default 2 polls, so that every host holds it first; 0 shows what a host that has not heard
//! of the rollout yet does).
//! 1. Good release: time from the rollout's creation to every host on it; goal: the sum of the
//!    soaks + 2 polls.
//! 2. Bad release: hosts that ever took it (goal: at most the canary wave and 1 % of the
//!    fleet); time from the halt to each of them running the previous version (goal: 2 polls).
//! 3. For both: heartbeats/s the manager answered while the rollout ran, p50/p99 latency.
//!
//! Run: `cargo build --release -p updraft && cargo bench -p updraft --bench fleet`
//! (target/release/updraft is used when it exists; UPDRAFT_FLEET_KEEP=1 keeps the temporary
//! directory with the databases and the manager's and relay's logs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::plan::Selection;
use model::protocol::{Heartbeat, HeartbeatReply, ModuleReport, ModuleState, Policy, Role};
use model::protocol::{VersionFailure, HEARTBEAT_PATH};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use updraft::launch::{Launcher, Logs, Server};

const C: &str = "antimalware.pattern";
const BASE: &str = "18.523.00";
const GOOD: &str = "18.600.00";
const BAD: &str = "18.700.00";
/// The waves' shares (percent of the fleet) in both rollouts.
const SHARES: [u8; 3] = [1, 10, 100];

struct Settings {
    hosts: usize,
    poll: Duration,
    soak: u64,
    fail_pct: usize,
    publish_after: Duration,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Settings {
        let poll = env("UPDRAFT_FLEET_POLL", 1).clamp(1, 60);
        Settings {
            hosts: env("UPDRAFT_FLEET_HOSTS", 2000).clamp(1, 10_000) as usize,
            poll: Duration::from_secs(poll),
            soak: env("UPDRAFT_FLEET_SOAK", 3).min(600),
            fail_pct: env("UPDRAFT_FLEET_FAIL_PCT", 50).min(100) as usize,
            publish_after: Duration::from_secs(
                env("UPDRAFT_FLEET_PUBLISH_AFTER", 2 * poll).min(600),
            ),
        }
    }

    /// How long a scenario may run once its rollout is created.
    fn limit(&self) -> Duration {
        self.publish_after + Duration::from_secs(SHARES.len() as u64 * (self.soak + 20) + 30)
    }
}

/// `updraft` with these space-separated arguments (paths here have no spaces) to completion.
fn run(launcher: &Launcher, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    launcher.run(&args).unwrap();
}

fn serve(launcher: &Launcher, args: &str, logs: Logs) -> Server {
    let args: Vec<&str> = args.split_whitespace().collect();
    launcher.server(&args, &[], logs).unwrap()
}

/// The repository, its origin and the relay the hosts poll (shared by the scenarios).
struct Content {
    launcher: Launcher,
    repo: PathBuf,
    origin: Server,
    relay: Server,
}

impl Content {
    fn start(launcher: &Launcher, dir: &Path) -> Content {
        let repo = dir.join("repo");
        run(launcher, &format!("repo init {}", repo.display()));
        let origin = format!("serve {} --listen 127.0.0.1:0", repo.display());
        let origin = serve(launcher, &origin, Logs::Discard);
        let relay = format!(
            "relay --upstream {} --trusted-root {} --cache {} --listen 127.0.0.1:0 --poll-interval 1",
            origin.base,
            repo.join("metadata/1.root.json").display(),
            dir.join("relay").display()
        );
        let relay = serve(launcher, &relay, Logs::File(dir.join("relay.log")));
        let c = Content {
            launcher: launcher.clone(),
            repo,
            origin,
            relay,
        };
        c.publish(BASE);
        c
    }

    /// Sign `version` of the pattern and publish it (the relay picks it up within a second).
    fn publish(&self, version: &str) {
        let file = self.repo.with_file_name(format!("{C}.dat"));
        std::fs::write(&file, format!("pattern {version}")).unwrap();
        let (r, f) = (self.repo.display(), file.display());
        let add = format!("repo add {r} {f} --component {C} --version {version} --kind pattern");
        run(&self.launcher, &add);
        run(&self.launcher, &format!("repo publish {r}"));
    }
}

/// A fresh `updraft manager` with the fleet enrolled: (host id, credential) per host.
struct Manager {
    server: Server,
    admin: String,
    hosts: Vec<(String, String)>,
    http: reqwest::blocking::Client,
}

fn hostname(i: usize) -> String {
    format!("host-{i:05}")
}

impl Manager {
    fn start(launcher: &Launcher, dir: &Path, relay: &str, st: &Settings) -> Manager {
        std::fs::create_dir_all(dir).unwrap();
        let url = format!("sqlite://{}", dir.join("manager.db").display());
        let db = manager::Db::open(&url).unwrap();
        let group = manager::db::Group {
            name: "fleet".into(),
            role: Role::Agent,
            relays: vec![relay.into()],
            poll_interval: st.poll.as_secs(),
            ..Default::default()
        };
        db.put_group(&group, "bench").unwrap();
        let token = db.create_enroll_token("fleet", None, None).unwrap();
        let hosts = (0..st.hosts)
            .map(|i| {
                db.enroll(&token, &hostname(i), Role::Agent)
                    .unwrap()
                    .unwrap()
            })
            .map(|r| (r.host_id, r.credential))
            .collect();
        let admin = db
            .create_admin_token("bench", manager::db::UserRole::Admin)
            .unwrap();
        drop(db);
        let args = format!("manager --db {url} --listen 127.0.0.1:0 --rollout-tick 1");
        let logs = Logs::File(dir.join("manager.log"));
        let server = serve(&launcher.rust_log("info,access=warn"), &args, logs);
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10));
        Manager {
            server,
            admin,
            hosts,
            http: http.build().unwrap(),
        }
    }

    /// Start a rollout of `version` in the waves of [`SHARES`]; its id.
    fn rollout(&self, version: &str, soak: u64) -> i64 {
        let waves: Vec<Value> = (SHARES.iter())
            .map(|s| json!({"share": s, "soak": soak}))
            .collect();
        let body = json!({"component": C, "version": version, "waves": waves, "silent_after": 60});
        let url = format!("{}/api/v1/rollouts", self.server.base);
        let resp = self
            .http
            .post(url)
            .bearer_auth(&self.admin)
            .json(&body)
            .send();
        let v: Value = resp.unwrap().error_for_status().unwrap().json().unwrap();
        v["id"].as_i64().unwrap()
    }

    /// The rollout as the (cheap) list answers it: `state`, `wave`, `reason`, `rolled_back`.
    fn state(&self, id: i64) -> Option<Value> {
        let url = format!("{}/api/v1/rollouts", self.server.base);
        let resp = self.http.get(url).bearer_auth(&self.admin).send().ok()?;
        let mut v: Value = resp.json().ok()?;
        let list = v["rollouts"].as_array_mut()?;
        list.iter_mut().find(|r| r["id"] == id).map(Value::take)
    }
}

/// What the simulated hosts share: where to go, and what they did (for the figures).
#[derive(Default)]
struct Ctx {
    client: reqwest::Client,
    manager: String,
    relay: String,
    stop: AtomicBool,
    poll: Duration,
    hosts: usize,
    fail_pct: usize,
    /// Heartbeats answered 200: when sent and how long until the reply was read.
    answered: Mutex<Vec<(Instant, Duration)>>,
    /// Heartbeats refused (429), failed heartbeats, relay GETs, failed relay GETs.
    counts: [AtomicU64; 4],
    /// The version each host runs.
    running: Mutex<Vec<Option<String>>>,
    /// Every install: host, version, when, whether its reload succeeded.
    installs: Mutex<Vec<Install>>,
    /// The first failed request, with why.
    first_error: Mutex<Option<String>>,
}

type Install = (usize, String, Instant, bool);
const REFUSED: usize = 0;
const ERRORS: usize = 1;
const GETS: usize = 2;
const GET_ERRORS: usize = 3;

impl Ctx {
    fn count(&self, what: usize) {
        self.counts[what].fetch_add(1, Relaxed);
    }

    fn failed(&self, what: usize, why: String) {
        self.count(what);
        self.first_error.lock().unwrap().get_or_insert(why);
    }
}

#[derive(Default)]
struct Host {
    idx: usize,
    credential: String,
    etag: Option<String>,
    offered: Vec<String>,
    running: Option<String>,
    policy: Option<Policy>,
    failed: Vec<VersionFailure>,
    fault: Option<String>,
}

impl Host {
    async fn run(mut self, ctx: Arc<Ctx>, deadline: Instant) {
        let spread = ctx.poll.mul_f64(self.idx as f64 / ctx.hosts as f64);
        tokio::time::sleep(spread).await;
        let mut tick = tokio::time::interval(ctx.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !ctx.stop.load(Relaxed) && Instant::now() < deadline {
            tick.tick().await;
            self.cycle(&ctx).await;
        }
    }

    /// As `Agent::cycle`: report first (the update acts on the freshest policy), update, and
    /// when that changed something report again; when that reply changes the selection,
    /// update and report once more.
    async fn cycle(&mut self, ctx: &Ctx) {
        self.heartbeat(ctx).await;
        if !self.update(ctx).await {
            return;
        }
        let before = Selection::from_policy(self.policy.as_ref());
        if self.heartbeat(ctx).await && Selection::from_policy(self.policy.as_ref()) != before {
            self.update(ctx).await;
            self.heartbeat(ctx).await;
        }
    }

    /// Whether something changed (an install, or a failed one).
    async fn update(&mut self, ctx: &Ctx) -> bool {
        match listing(ctx, self.etag.as_deref()).await {
            Ok(Some((etag, versions))) => (self.etag, self.offered) = (etag, versions),
            Ok(None) => {}
            Err(e) => ctx.failed(GET_ERRORS, format!("relay: {e:?}")),
        }
        let offered: BTreeMap<&str, (model::Version, ())> = (self.offered.iter())
            .filter_map(|v| Some((v.as_str(), (v.parse().ok()?, ()))))
            .collect();
        let sel = Selection::from_policy(self.policy.as_ref());
        let Some(want) = sel.choose(C, &offered, self.running.as_deref()) else {
            return false;
        };
        // The agent installs neither what it runs nor a version whose reload failed.
        if self.running.as_deref() == Some(want) || self.failed.iter().any(|f| f.version == want) {
            return false;
        }
        let want = want.to_string();
        let fails = want == BAD && self.idx % 100 < ctx.fail_pct;
        let event = (self.idx, want.clone(), Instant::now(), !fails);
        ctx.installs.lock().unwrap().push(event);
        if fails {
            // What `agent::modules` records: the old version back, the module offline.
            let reason = "reload failed: exit status: 1".to_string();
            self.fault = Some(reason.clone());
            let (component, version) = (C.to_string(), want);
            self.failed.push(VersionFailure {
                component,
                version,
                reason,
            });
            return true;
        }
        self.fault = None;
        ctx.running.lock().unwrap()[self.idx] = Some(want.clone());
        self.running = Some(want);
        true
    }

    /// What the agent's heartbeat says of this host.
    fn report(&self, upstream: &str) -> Heartbeat {
        let never = || format!("component {C} never installed");
        let reason = (self.fault.clone()).or_else(|| self.running.is_none().then(never));
        let status = if reason.is_some() {
            ModuleState::Offline
        } else {
            ModuleState::Online
        };
        let components = BTreeMap::from([(C.to_string(), self.running.clone())]);
        let module = ModuleReport {
            name: "antimalware".into(),
            status,
            reason,
            components,
        };
        Heartbeat {
            hostname: hostname(self.idx),
            role: Role::Agent,
            upstream: Some(upstream.to_string()),
            builds: BTreeMap::from([("updraft".into(), env!("CARGO_PKG_VERSION").into())]),
            components: (self.running.iter())
                .map(|v| (C.to_string(), v.clone()))
                .collect(),
            modules: vec![module],
            history: Vec::new(),
            last_result: Some("ok".into()),
            applied_policy: self.policy.clone(),
            failed_versions: self.failed.clone(),
            trust: None,
        }
    }

    /// Send the heartbeat; whether a reply (with its policy, kept) was read.
    async fn heartbeat(&mut self, ctx: &Ctx) -> bool {
        let url = format!("{}{HEARTBEAT_PATH}", ctx.manager);
        let body = self.report(&ctx.relay);
        let t = Instant::now();
        let sent = ctx
            .client
            .post(url)
            .bearer_auth(&self.credential)
            .json(&body);
        let reply = match sent.send().await {
            Ok(r) if r.status() == 200 => {
                r.json::<HeartbeatReply>().await.map_err(|e| e.to_string())
            }
            Ok(r) if r.status() == 429 => {
                ctx.count(REFUSED);
                return false;
            }
            Ok(r) => Err(format!("status {}", r.status())),
            Err(e) => Err(format!("{e:?}")),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                ctx.failed(ERRORS, format!("heartbeat: {e}"));
                return false;
            }
        };
        ctx.answered.lock().unwrap().push((t, t.elapsed()));
        self.policy = reply.policy;
        true
    }
}

type Listing = Option<(Option<String>, Vec<String>)>;

/// The versions of `C` the relay lists, unless `timestamp.json` still has the ETag `etag`.
async fn listing(ctx: &Ctx, etag: Option<&str>) -> Result<Listing, reqwest::Error> {
    let mut req = ctx
        .client
        .get(format!("{}/metadata/timestamp.json", ctx.relay));
    if let Some(e) = etag {
        req = req.header(reqwest::header::IF_NONE_MATCH, e);
    }
    ctx.count(GETS);
    let resp = req.send().await?.error_for_status()?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    let etag = resp.headers().get(reqwest::header::ETAG);
    let etag = etag.and_then(|v| v.to_str().ok()).map(str::to_string);
    let timestamp: Value = resp.json().await?;
    let snapshot = listed(ctx, "snapshot", &timestamp).await?;
    let targets = listed(ctx, "targets", &snapshot).await?;
    let prefix = format!("content/{C}/");
    let versions: BTreeSet<String> = (targets["signed"]["targets"].as_object().into_iter())
        .flatten()
        .filter_map(|(path, _)| Some(path.strip_prefix(&prefix)?.split('/').next()?.into()))
        .collect();
    Ok(Some((etag, versions.into_iter().collect())))
}

/// `N.role.json` as `parent` lists it, from the relay.
async fn listed(ctx: &Ctx, role: &str, parent: &Value) -> Result<Value, reqwest::Error> {
    let v = parent["signed"]["meta"][format!("{role}.json")]["version"].as_u64();
    let url = format!("{}/metadata/{}.{role}.json", ctx.relay, v.unwrap_or(0));
    ctx.count(GETS);
    ctx.client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

/// The simulated hosts of one scenario, running on `rt` until stopped (or settling and the
/// scenario ran out of time).
struct Fleet {
    ctx: Arc<Ctx>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    fn start(rt: &Runtime, m: &Manager, relay: &str, st: &Settings) -> Fleet {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10));
        let ctx = Arc::new(Ctx {
            client: client.build().unwrap(),
            manager: m.server.base.clone(),
            relay: relay.to_string(),
            poll: st.poll,
            hosts: st.hosts,
            fail_pct: st.fail_pct,
            running: Mutex::new(vec![None; st.hosts]),
            ..Default::default()
        });
        let deadline = Instant::now() + Duration::from_secs(150) + st.limit();
        let tasks = (m.hosts.iter().enumerate())
            .map(|(idx, (_, credential))| {
                let host = Host {
                    idx,
                    credential: credential.clone(),
                    ..Default::default()
                };
                rt.spawn(host.run(ctx.clone(), deadline))
            })
            .collect();
        Fleet { ctx, tasks }
    }

    fn on(&self, version: &str) -> usize {
        let running = self.ctx.running.lock().unwrap();
        running
            .iter()
            .filter(|v| v.as_deref() == Some(version))
            .count()
    }

    /// Heartbeats/s, p50 and p99 latency of those sent since `from`, refusals and errors.
    fn load(&self, from: Instant, before: [u64; 4]) -> String {
        let answered = self.ctx.answered.lock().unwrap();
        let mut lat: Vec<Duration> = (answered.iter().filter(|(t, _)| *t >= from))
            .map(|(_, d)| *d)
            .collect();
        lat.sort();
        let (n, secs) = (lat.len(), from.elapsed().as_secs_f64());
        let ms = |p: f64| {
            lat.get((n as f64 * p) as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        let now = self.counts();
        let d = |i: usize| now[i] - before[i];
        let first = self.ctx.first_error.lock().unwrap().take();
        let first = first.map_or(String::new(), |e| format!(" (first: {e})"));
        format!(
            "{n} heartbeats in {secs:.1} s = {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} refused (429), {} failed; relay {:.0} GETs/s, {} failed{first}",
            n as f64 / secs, ms(0.5), ms(0.99), d(REFUSED), d(ERRORS), d(GETS) as f64 / secs, d(GET_ERRORS)
        )
    }

    fn counts(&self) -> [u64; 4] {
        self.ctx.counts.each_ref().map(|a| a.load(Relaxed))
    }

    fn stop(self, rt: &Runtime) {
        self.ctx.stop.store(true, Relaxed);
        self.tasks.iter().for_each(|t| t.abort());
        rt.block_on(async {
            for t in self.tasks {
                let _ = t.await;
            }
        });
    }
}

/// One scenario: a fresh manager and fleet settled on `from`, then a rollout of `to` created
/// (at `t0`) and `to` published `publish_after` later.
struct Scenario {
    m: Manager,
    fleet: Fleet,
    id: i64,
    t0: Instant,
    counts: [u64; 4],
}

impl Scenario {
    fn start(
        rt: &Runtime,
        content: &Content,
        st: &Settings,
        dir: &Path,
        from: &str,
        to: &str,
    ) -> Option<Scenario> {
        let t = Instant::now();
        let m = Manager::start(&content.launcher, dir, &content.relay.base, st);
        let enrolled = t.elapsed().as_secs_f64();
        let (t, fleet) = (
            Instant::now(),
            Fleet::start(rt, &m, &content.relay.base, st),
        );
        while fleet.on(from) < st.hosts && t.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let (on, settled) = (fleet.on(from), t.elapsed().as_secs_f64());
        let first = fleet.ctx.first_error.lock().unwrap().take();
        let first = first.map_or(String::new(), |e| format!("; meanwhile {e}"));
        println!(
            "  {} hosts enrolled in {enrolled:.1} s; {on} on {from} after {settled:.1} s{first}",
            st.hosts
        );
        if on < st.hosts {
            fleet.stop(rt);
            return None;
        }
        let (t0, counts) = (Instant::now(), fleet.counts());
        let id = m.rollout(to, st.soak);
        std::thread::sleep(st.publish_after.saturating_sub(t0.elapsed()));
        content.publish(to);
        println!(
            "  rollout created, {to} published {:.2} s later",
            t0.elapsed().as_secs_f64()
        );
        Some(Scenario {
            m,
            fleet,
            id,
            t0,
            counts,
        })
    }

    fn stop(self, rt: &Runtime) -> String {
        let load = self.fleet.load(self.t0, self.counts);
        self.fleet.stop(rt);
        self.m.server.kill();
        format!("  manager while the rollout ran: {load}")
    }
}

fn text<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or_default()
}

fn met(ok: bool) -> &'static str {
    ["NOT met", "met"][usize::from(ok)]
}

fn good_release(rt: &Runtime, content: &Content, st: &Settings, dir: &Path) {
    println!(
        "1. good release {GOOD}, waves {SHARES:?} %, soak {} s each",
        st.soak
    );
    let Some(sc) = Scenario::start(rt, content, st, &dir.join("good"), BASE, GOOD) else {
        return;
    };
    let (mut waves, mut all, mut end) = (vec![0.0], None, None);
    while sc.t0.elapsed() < st.limit() && end.is_none() {
        let now = sc.t0.elapsed().as_secs_f64();
        if all.is_none() && sc.fleet.on(GOOD) == st.hosts {
            all = Some(now);
        }
        let r = sc.m.state(sc.id).unwrap_or_default();
        if r["state"] != "running" && !r.is_null() {
            end = Some((
                now,
                text(&r, "state").to_string(),
                text(&r, "reason").to_string(),
            ));
        } else if r["wave"]
            .as_u64()
            .is_some_and(|w| w as usize >= waves.len())
        {
            waves.push(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let on = sc.fleet.on(GOOD);
    let load = sc.stop(rt);
    let waves: Vec<String> = waves.iter().map(|t| format!("{t:.1}")).collect();
    println!("  waves released at {} s after creation", waves.join(", "));
    if let Some((t, state, why)) = end {
        println!("  rollout {state} at {t:.1} s: {why}");
    }
    let goal = (SHARES.len() as u64 * st.soak) as f64 + 2.0 * st.poll.as_secs_f64();
    match all {
        Some(t) => println!(
            "  100 % of hosts on {GOOD} {t:.1} s after creation; goal <= soaks + 2 polls = {goal:.0} s: {}",
            met(t <= goal)
        ),
        None => println!("  only {on} of {} hosts on {GOOD} at the end: goal NOT met", st.hosts),
    }
    println!("{load}");
}

/// When the halt was seen, and the rollout then.
type Halt = (Instant, Value);

fn bad_release(rt: &Runtime, content: &Content, st: &Settings, dir: &Path) {
    let pct = st.fail_pct;
    println!("2. bad release {BAD} (its reload fails on {pct} % of the hosts), same waves");
    let Some(sc) = Scenario::start(rt, content, st, &dir.join("bad"), GOOD, BAD) else {
        return;
    };
    let (mut halt, mut clean): (Option<Halt>, Option<Instant>) = (None, None);
    // Until the halt, then until no host has run the bad version for 3 polls.
    while sc.t0.elapsed() < st.limit() && clean.is_none_or(|t| t.elapsed() < 3 * st.poll) {
        if halt.is_none() {
            let r = sc.m.state(sc.id).filter(|r| r["state"] != "running");
            halt = r.map(|r| (Instant::now(), r));
        }
        if halt.is_some() && sc.fleet.on(BAD) == 0 {
            clean = clean.or(Some(Instant::now()));
        } else {
            clean = None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let installs = sc.fleet.ctx.installs.lock().unwrap().clone();
    let still = sc.fleet.on(BAD);
    took_bad(&sc, st, &installs);
    let (t0, load) = (sc.t0, sc.stop(rt));
    match halt {
        Some(h) => back(st, &installs, t0, &h, still),
        None => println!("  the rollout never left running: goals NOT met"),
    }
    println!("{load}");
}

/// How many hosts took the bad version, against the canary wave and 1 % of the fleet.
fn took_bad(sc: &Scenario, st: &Settings, installs: &[Install]) {
    let hosts = &sc.m.hosts;
    let canary_of =
        |i: usize| manager::rollout::position(sc.id, &hosts[i].0) < 100 * u32::from(SHARES[0]);
    let took: BTreeSet<usize> = (installs.iter().filter(|e| e.1 == BAD))
        .map(|e| e.0)
        .collect();
    let ran = (installs.iter()).filter(|e| e.1 == BAD && e.3).count();
    let outside = took.iter().filter(|&&i| !canary_of(i)).count();
    let canary = (0..hosts.len()).filter(|&i| canary_of(i)).count();
    let one_pct = st.hosts as f64 / 100.0;
    let ok = took.len() <= canary && took.len() as f64 <= one_pct;
    println!(
        "  hosts that took {BAD}: {} ({ran} ran it, {} reload failed; {outside} outside the canary wave); goal <= canary wave ({canary}) and <= 1 % ({one_pct:.0}): {}",
        took.len(),
        took.len() - ran,
        met(ok)
    );
}

/// The halt, and how long after it every host that ran the bad version ran the previous one.
fn back(st: &Settings, installs: &[Install], t0: Instant, (at, r): &Halt, still: usize) {
    let failure = (installs.iter()).find(|e| e.1 == BAD && !e.3);
    let after = failure.map_or(0.0, |e| at.saturating_duration_since(e.2).as_secs_f64());
    println!(
        "  {} in wave {} seen {:.1} s after creation, {after:.1} s after the first failure (rolled back: {}): {}",
        text(r, "state"),
        r["wave"].as_u64().unwrap_or(0) + 1,
        at.duration_since(t0).as_secs_f64(),
        r["rolled_back"],
        text(r, "reason")
    );
    let (mut worst, mut ran, mut missing, mut other) = (Duration::ZERO, 0, 0, 0);
    for bad in installs.iter().filter(|e| e.1 == BAD && e.3) {
        ran += 1;
        match (installs.iter()).find(|e| e.0 == bad.0 && e.2 > bad.2 && e.1 != BAD) {
            Some(e) => {
                worst = worst.max(e.2.saturating_duration_since(*at));
                other += usize::from(e.1 != GOOD);
            }
            None => missing += 1,
        }
    }
    let (goal, w) = (2.0 * st.poll.as_secs_f64(), worst.as_secs_f64());
    println!(
        "  back on {GOOD}: {} of {ran} hosts that ran {BAD}, the last {w:.2} s after the halt was seen ({other} to another version, {still} still on it); goal <= 2 polls = {goal:.0} s: {}",
        ran - missing,
        met(missing == 0 && other == 0 && still == 0 && w <= goal)
    );
    let late: Vec<&Install> = (installs.iter())
        .filter(|e| e.1 == BAD && e.2 > *at)
        .collect();
    if !late.is_empty() {
        let failed = late.iter().filter(|e| !e.3).count();
        println!(
            "  {} hosts installed {BAD} after the halt was seen, on the policy of their previous heartbeat ({failed} of them failed its reload)",
            late.len()
        );
    }
}

fn main() {
    let st = Settings::from_env();
    let tmp = tempfile::tempdir().unwrap();
    if env("UPDRAFT_FLEET_KEEP", 0) == 1 {
        println!(
            "keeping {} (databases, manager and relay logs)",
            tmp.path().display()
        );
    }
    let launcher = Launcher::new(
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/updraft"))
            .filter(|p| p.exists())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_updraft").into()),
    );
    let content = Content::start(&launcher, tmp.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "fleet: {} simulated hosts, poll {} s, relay {} (origin {}), manager --rollout-tick 1",
        st.hosts,
        st.poll.as_secs(),
        content.relay.base,
        content.origin.base
    );
    good_release(&rt, &content, &st, tmp.path());
    bad_release(&rt, &content, &st, tmp.path());
    let Content { relay, origin, .. } = content;
    relay.kill();
    origin.kill();
    if env("UPDRAFT_FLEET_KEEP", 0) == 1 {
        let _ = tmp.keep();
    }
}
