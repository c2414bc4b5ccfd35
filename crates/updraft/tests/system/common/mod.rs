//! Helpers for end-to-end tests with real `updraft` processes on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use updraft::launch::{self, Launcher, Logs};

mod agent_bed;

pub use agent_bed::{AgentBed, AgentOpts};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_updraft"))
}

/// The `updraft` under test, run with `RUST_LOG=warn`.
pub fn launcher() -> Launcher {
    Launcher::new(bin())
}

pub fn run(args: &[&str]) -> Output {
    launcher().command(args).output().unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "updraft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "updraft {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `updraft tuf-client … download` arguments for one target.
pub fn download_args<'a>(
    md: &'a Path,
    meta_url: &'a str,
    target_url: &'a str,
    dir: &'a Path,
    target: &'a str,
) -> Vec<&'a str> {
    vec![
        "tuf-client",
        "--metadata-dir",
        md.to_str().unwrap(),
        "--metadata-url",
        meta_url,
        "--target-name",
        target,
        "--target-base-url",
        target_url,
        "--target-dir",
        dir.to_str().unwrap(),
        "download",
    ]
}

/// A running `updraft serve`, `relay` or `manager` process (the launch library's), killed on
/// drop.
pub struct Server(pub launch::Server);

impl std::ops::Deref for Server {
    type Target = launch::Server;
    fn deref(&self) -> &launch::Server {
        &self.0
    }
}

impl Server {
    /// `updraft serve DIR` on a free port.
    pub fn start(dir: &Path) -> Server {
        Self::spawn(
            &["serve", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"],
            &[],
        )
    }

    /// Any `updraft` command that prints `… http(s)://ADDR…` on its first stdout line.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server(launcher().server(args, env, Logs::Discard).unwrap())
    }

    /// Stop the process (kill -9) and wait for it.
    pub fn kill(self) {
        self.0.kill();
    }
}

/// `updraft admin --db DB enroll-token create --group GROUP [--uses N]`: the token printed.
pub fn enroll_token(db: &str, group: &str, uses: Option<u32>) -> String {
    let uses = uses.map(|n| n.to_string());
    let mut args = vec![
        "admin",
        "--db",
        db,
        "enroll-token",
        "create",
        "--group",
        group,
    ];
    if let Some(n) = &uses {
        args.extend(["--uses", n.as_str()]);
    }
    ok(&args)
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    launch::free_port().unwrap()
}

/// Call `check` every 100 ms until it returns `Ok` (for at most 30 s); its value. Panics
/// naming `what` and the last `Err` (say what was seen, so a failure shows it).
pub fn eventually<T, E: std::fmt::Display>(what: &str, check: impl FnMut() -> Result<T, E>) -> T {
    let (within, every) = (Duration::from_secs(30), Duration::from_millis(100));
    launch::eventually(what, within, every, check).unwrap_or_else(|e| panic!("{e}"))
}

/// The python interpreter of the venv that scripts/setup-python.sh makes (set up once per test
/// process; the script is idempotent and locks against concurrent runs).
pub fn python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("UPDRAFT_PYTHON") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let st = Command::new(root.join("scripts/setup-python.sh"))
            .status()
            .unwrap();
        assert!(st.success(), "scripts/setup-python.sh failed");
        root.join(".venv/bin/python")
    })
    .clone()
}

/// A blocking HTTP client for assertions.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().build().unwrap()
}

/// GET a URL and parse JSON.
pub fn get_json(url: &str) -> serde_json::Value {
    serde_json::from_slice(&http().get(url).send().unwrap().bytes().unwrap()).unwrap()
}

/// Wait (bounded: 30 s) until `cond` holds for the relay's `/status`; panics with the last one.
pub fn wait_status(
    base: &str,
    what: &str,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(what, || {
        let resp = http()
            .get(format!("{base}/status"))
            .send()
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value = resp
            .bytes()
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
        if cond(&v) {
            Ok(v)
        } else {
            Err(format!("status {v:#}"))
        }
    })
}

/// A repository made with `updraft repo` holding a pattern and a rules file.
pub struct Repo {
    pub dir: PathBuf,
    pub root_v1: PathBuf,
}

impl Repo {
    pub fn new(parent: &Path) -> Repo {
        let dir = parent.join("repo");
        ok(&["repo", "init", dir.to_str().unwrap()]);
        let r = Repo {
            root_v1: dir.join("metadata/1.root.json"),
            dir,
        };
        r.add(
            "antimalware.pattern",
            "18.523.00",
            "pattern",
            b"pattern 18.523.00",
        );
        r.add("ips.rules", "2026.11.1", "rules", b"rules 2026.11.1");
        r.publish();
        r
    }

    /// Stage `body` as `content/<component>/<version>/<component>.dat`; returns the target path.
    pub fn add(&self, component: &str, version: &str, kind: &str, body: &[u8]) -> String {
        let file = self.dir.parent().unwrap().join(format!("{component}.dat"));
        self.add_file(&file, body, [component, version, kind], &[]);
        format!("content/{component}/{version}/{component}.dat")
    }

    /// Write `body` to `file` and stage it with `updraft repo add` as `[component, version,
    /// kind]`, with `extra` arguments; the command's output.
    pub fn add_file(&self, file: &Path, body: &[u8], what: [&str; 3], extra: &[&str]) -> String {
        std::fs::write(file, body).unwrap();
        let [component, version, kind] = what;
        let (d, f) = (self.dir.to_str().unwrap(), file.to_str().unwrap());
        let mut args = vec![
            "repo",
            "add",
            d,
            f,
            "--component",
            component,
            "--version",
            version,
            "--kind",
            kind,
        ];
        args.extend_from_slice(extra);
        ok(&args)
    }

    pub fn publish(&self) {
        ok(&["repo", "publish", self.dir.to_str().unwrap()]);
    }

    /// `updraft repo delegate --name NAME --path PATTERN`, published.
    pub fn delegate(&self, name: &str, pattern: &str) {
        let d = self.dir.to_str().unwrap();
        ok(&["repo", "delegate", d, "--name", name, "--path", pattern]);
        self.publish();
    }

    /// What a delegate holding only `role`'s keys can publish: its current metadata with `f`
    /// applied as the next version, signed with `role`'s keys, and a new snapshot and timestamp
    /// listing it (as the repository does when a delegate uploads its role). Written directly,
    /// so the engine's own state is not updated: publish nothing else afterwards.
    pub fn delegate_publishes(&self, role: &str, f: impl FnOnce(&mut serde_json::Value)) {
        let repo = tuf::repo::Repository::open(&self.dir).unwrap();
        let md = repo.metadata_dir();
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(md.join(name)).unwrap()).unwrap()
        };
        let meta = |bytes: &[u8], version: u64| {
            serde_json::json!({"version": version, "length": bytes.len(),
                "hashes": {"sha256": tuf::crypto::sha256_hex(bytes)}})
        };
        let (snap_v, role_v) = (repo.snapshot().version, repo.targets(role).unwrap().version);
        let mut signed = read(&format!("{role_v}.{role}.json"))["signed"].clone();
        f(&mut signed);
        signed["version"] = serde_json::json!(role_v + 1);
        let role_bytes = repo.sign_role(role, &signed).unwrap();
        std::fs::write(md.join(format!("{}.{role}.json", role_v + 1)), &role_bytes).unwrap();
        let mut snap = read(&format!("{snap_v}.snapshot.json"))["signed"].clone();
        snap["version"] = serde_json::json!(snap_v + 1);
        snap["meta"][format!("{role}.json")] = meta(&role_bytes, role_v + 1);
        let snap_bytes = repo.sign_role("snapshot", &snap).unwrap();
        std::fs::write(
            md.join(format!("{}.snapshot.json", snap_v + 1)),
            &snap_bytes,
        )
        .unwrap();
        let mut ts = read("timestamp.json")["signed"].clone();
        ts["version"] = serde_json::json!(ts["version"].as_u64().unwrap() + 1);
        ts["meta"]["snapshot.json"] = meta(&snap_bytes, snap_v + 1);
        std::fs::write(
            md.join("timestamp.json"),
            repo.sign_role("timestamp", &ts).unwrap(),
        )
        .unwrap();
    }

    /// Sign `path` with `custom` as `role` through the engine (as a repository written by
    /// another tool could, with what `updraft repo add` refuses to write), and publish.
    pub fn sign_as(&self, role: &str, path: &str, custom: serde_json::Value, body: &[u8]) {
        let mut r = tuf::repo::Repository::open(&self.dir).unwrap();
        r.add_target_bytes(role, path, body, Some(custom)).unwrap();
        r.publish().unwrap();
    }

    /// Rotate `role` to exactly `keys` new keys and `threshold` (lowering it if asked to).
    pub fn rotate(&self, role: &str, keys: &str, threshold: &str) {
        let d = self.dir.to_str().unwrap();
        ok(&[
            "repo",
            "rotate",
            d,
            "--role",
            role,
            "--keys",
            keys,
            "--threshold",
            threshold,
            "--allow-lower-threshold",
        ]);
    }
}

/// `updraft relay --once`: one sync cycle; the outcome JSON, or the error output.
pub fn relay_once(
    upstreams: &[&str],
    root: &Path,
    cache: &Path,
) -> Result<serde_json::Value, String> {
    relay_once_with(upstreams, root, cache, &[], &[])
}

/// As [`relay_once`] with extra arguments and environment.
pub fn relay_once_with(
    upstreams: &[&str],
    root: &Path,
    cache: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Result<serde_json::Value, String> {
    let mut args = vec![
        "relay",
        "--once",
        "--trusted-root",
        root.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ];
    for u in upstreams {
        args.extend(["--upstream", u]);
    }
    args.extend_from_slice(extra);
    let out = launcher()
        .command(&args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(format!(
            "status {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A relay serving its cache only (no sync), on a free port.
pub fn relay_offline(root: &Path, cache: &Path) -> Server {
    let (r, c) = (root.to_str().unwrap(), cache.to_str().unwrap());
    Server::spawn(
        &[
            "relay",
            "--offline",
            "--trusted-root",
            r,
            "--cache",
            c,
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    )
}

/// The file name `updraft tuf-client` gives a downloaded target.
pub fn local_name(target: &str) -> String {
    target
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Download one target through `base` with `updraft tuf-client` (metadata in `md`, initialised
/// with `root` if new) into `dl`; returns its bytes, or the error output.
pub fn client_download(
    md: &Path,
    root: &Path,
    base: &str,
    target: &str,
    dl: &Path,
) -> Result<Vec<u8>, String> {
    if !md.join("root.json").exists() {
        ok(&[
            "tuf-client",
            "--metadata-dir",
            md.to_str().unwrap(),
            "init",
            root.to_str().unwrap(),
        ]);
    }
    let (m, t) = (format!("{base}/metadata"), format!("{base}/targets"));
    let out = run(&download_args(md, &m, &t, dl, target));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(std::fs::read(dl.join(local_name(target))).unwrap())
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A relay daemon syncing from `upstream` every second, serving on a free port.
pub fn relay_daemon(upstream: &str, root: &Path, cache: &Path) -> Server {
    let (r, c) = (root.to_str().unwrap(), cache.to_str().unwrap());
    Server::spawn(
        &[
            "relay",
            "--upstream",
            upstream,
            "--trusted-root",
            r,
            "--cache",
            c,
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1",
        ],
        &[],
    )
}

/// The value of the sample `series` (name and labels exactly as exposed) at `base/metrics`
/// (a server without credentials: origin, relay).
pub fn metric(base: &str, series: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    sample(&text, series)
}

/// The value of the sample `series` (name and labels exactly as exposed) in the Prometheus
/// text `text`.
pub fn sample(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"));
    line[prefix.len()..].trim().parse().unwrap()
}

/// The timestamp version a repository directory publishes.
pub fn published_timestamp(repo: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/timestamp.json")).unwrap())
            .unwrap();
    v["signed"]["version"].as_u64().unwrap()
}
