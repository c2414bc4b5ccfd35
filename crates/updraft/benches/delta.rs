//! Delta benchmark (prints figures and the goals met or not; asserts nothing on timing).
//!
//! Pairs of consecutive versions of one file, each turned into deltas with `delta::make` (zstd
//! with a reference prefix and long-distance matching; bsdiff 4's matching via qbsdiff, its
//! streams repacked with zstd) and with Debian's `/usr/bin/bsdiff` (bzip2 streams) for
//! comparison:
//! - real data: consecutive releases of npm's `caniuse-lite` (the uncompressed package tar);
//! - real executables: the `ruff` binary of consecutive patch releases (PyPI manylinux x86_64
//!   wheels);
//! - a synthetic ~20 MB IDS rule set with daily churn, and a synthetic 100 MB signature
//!   database with one release's additions and removals.
//!
//! Then a simulated month: 30 daily releases of the rule set delivered to 1,000 agents behind
//! one relay, full files against deltas.
//!
//! Downloads are cached under `target/delta-bench-cache/` (reruns need no network); when a
//! registry cannot be reached the real pairs are skipped and the synthetic ones still run.
//! Each make and apply runs in a child process (this binary re-executed with
//! `DELTA_BENCH_JOB`) whose peak RSS (`VmHWM`) it reports at its end.
//!
//! Run: `cargo bench -p updraft --bench delta`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use delta::{Algorithm, Choice};

const NPM_PACKAGE: &str = "caniuse-lite";
/// Consecutive caniuse-lite releases (so one fewer pairs).
const NPM_VERSIONS: usize = 6;
/// Consecutive ruff patch releases (so one fewer pairs).
const RUFF_VERSIONS: usize = 3;
/// Agents behind the relay in the simulated month.
const AGENTS: u64 = 1_000;
/// Daily releases in the simulated month.
const DAYS: usize = 30;
/// The synthetic rule set's size, about.
const RULESET_BYTES: usize = 20_000_000;
/// The synthetic signature database's size, about.
const SIGDB_BYTES: usize = 100_000_000;
/// Longest any child process (a make, an apply, Debian's bsdiff, zstd, unzip) may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

const GOAL_DATA_PCT: f64 = 0.5;
const GOAL_BIN_RATIO: f64 = 1.1;
const GOAL_APPLY_MBS: f64 = 200.0;
const GOAL_MAKE_100MB_S: f64 = 10.0;

fn main() {
    if let Ok(job) = std::env::var("DELTA_BENCH_JOB") {
        match child_job(&job) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("delta bench job {job}: {e:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = run() {
        eprintln!("delta bench: {e:#}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Child jobs: one make or one apply, reporting wall time and peak RSS.

fn algorithm(name: &str) -> Result<Algorithm> {
    match name {
        "zstd" => Ok(Algorithm::Zstd),
        "bsdiff" => Ok(Algorithm::Bsdiff),
        _ => bail!("unknown algorithm {name}"),
    }
}

fn env_path(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow!("{name} is not set"))
}

/// Peak resident set size of this process, in bytes.
fn vm_hwm() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `make:ALG` or `apply:ALG`, on DELTA_BENCH_BASE / DELTA_BENCH_TARGET / DELTA_BENCH_DELTA.
/// Prints `secs=… bytes=… rss=…` (apply: secs is per pass, bytes the output per pass).
fn child_job(job: &str) -> Result<String> {
    let (kind, alg) = job.split_once(':').context("job is KIND:ALG")?;
    let alg = algorithm(alg)?;
    let base = std::fs::read(env_path("DELTA_BENCH_BASE")?).context("reading the base")?;
    let target_path = env_path("DELTA_BENCH_TARGET")?;
    let delta_path = env_path("DELTA_BENCH_DELTA")?;
    match kind {
        "make" => {
            let target = std::fs::read(&target_path).context("reading the target")?;
            let t = Instant::now();
            let made = delta::make(Choice::Only(alg), &base, &target)?;
            let secs = t.elapsed().as_secs_f64();
            std::fs::write(&delta_path, &made.bytes).context("writing the delta")?;
            Ok(format!(
                "secs={secs} bytes={} rss={}",
                made.bytes.len(),
                vm_hwm()
            ))
        }
        "apply" => {
            let expected = std::fs::metadata(&target_path)?.len();
            // First pass: check the output byte for byte against the target (streamed).
            let mut check = Compare {
                target: io::BufReader::with_capacity(1 << 20, std::fs::File::open(&target_path)?),
                mismatch: false,
            };
            delta::apply(
                alg,
                &base,
                std::fs::File::open(&delta_path)?,
                expected,
                &mut check,
            )?;
            let mut rest = [0u8; 1];
            if check.mismatch || check.target.read(&mut rest)? != 0 {
                bail!("the {alg} delta does not reproduce the target");
            }
            // Timed passes into a sink: at least one, until a second has passed, at most 20.
            let (mut passes, mut total) = (0u32, Duration::ZERO);
            while passes < 20 && (passes == 0 || total < Duration::from_secs(1)) {
                let delta = std::fs::File::open(&delta_path)?;
                let t = Instant::now();
                delta::apply(alg, &base, delta, expected, io::sink())?;
                total += t.elapsed();
                passes += 1;
            }
            Ok(format!(
                "secs={} bytes={expected} rss={}",
                total.as_secs_f64() / f64::from(passes),
                vm_hwm()
            ))
        }
        _ => bail!("unknown job kind {kind}"),
    }
}

/// A writer that compares what it is given with a file, streamed.
struct Compare<R> {
    target: R,
    mismatch: bool,
}

impl<R: Read> Write for Compare<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut want = vec![0u8; buf.len()];
        self.target.read_exact(&mut want)?;
        if want != buf {
            self.mismatch = true;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct JobResult {
    secs: f64,
    bytes: u64,
    rss: u64,
}

fn run_job(job: &str, base: &Path, target: &Path, delta: &Path) -> Result<JobResult> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.env("DELTA_BENCH_JOB", job)
        .env("DELTA_BENCH_BASE", base)
        .env("DELTA_BENCH_TARGET", target)
        .env("DELTA_BENCH_DELTA", delta);
    let out = run_bounded(&mut cmd, CHILD_TIMEOUT)?;
    let text = String::from_utf8_lossy(&out);
    let field = |name: &str| -> Result<f64> {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| anyhow!("job {job} printed no {name}: {text}"))
    };
    Ok(JobResult {
        secs: field("secs")?,
        bytes: field("bytes")? as u64,
        rss: field("rss")? as u64,
    })
}

/// Run a command to its end or `timeout` (then kill it): its stdout, or an error with its
/// stderr when it fails.
fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<Vec<u8>> {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} ran longer than {timeout:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "{what} failed ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Downloads, cached.

fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("delta-bench-cache")
}

fn http() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .user_agent("updraft-delta-bench")
        .build()?)
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Result<Vec<u8>> {
    let resp = client
        .get(url)
        .send()
        .with_context(|| format!("GET {url}"))?;
    if !resp.status().is_success() {
        bail!("GET {url}: {}", resp.status());
    }
    Ok(resp.bytes()?.to_vec())
}

/// Write `bytes` to `path` atomically (so an interrupted run never leaves a partial file).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Versions (oldest first) and file paths from the cache's `versions.txt`, if all are there.
fn cached(dir: &Path, ext: &str) -> Option<Vec<(String, PathBuf)>> {
    let list = std::fs::read_to_string(dir.join("versions.txt")).ok()?;
    let files: Vec<(String, PathBuf)> = list
        .lines()
        .filter(|l| !l.is_empty())
        .map(|v| (v.to_string(), dir.join(format!("{v}.{ext}"))))
        .collect();
    (files.len() >= 2 && files.iter().all(|(_, p)| p.is_file())).then_some(files)
}

/// The uncompressed package tars of the last NPM_VERSIONS releases of caniuse-lite.
fn npm_files(cache: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = cache.join(NPM_PACKAGE);
    if let Some(files) = cached(&dir, "tar") {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir)?;
    let client = http()?;
    let doc: serde_json::Value = serde_json::from_slice(&get(
        &client,
        &format!("https://registry.npmjs.org/{NPM_PACKAGE}"),
    )?)?;
    let times = doc["time"].as_object().context("no time in the document")?;
    let versions = doc["versions"]
        .as_object()
        .context("no versions in the document")?;
    let mut released: Vec<(&str, &str)> = versions
        .keys()
        .filter(|v| !v.contains('-'))
        .filter_map(|v| Some((times.get(v)?.as_str()?, v.as_str())))
        .collect();
    released.sort();
    let chosen = &released[released.len().saturating_sub(NPM_VERSIONS)..];
    let mut files = Vec::new();
    for &(_, v) in chosen {
        let url = versions[v]["dist"]["tarball"]
            .as_str()
            .with_context(|| format!("no tarball for {v}"))?;
        let tgz = dir.join(format!("{v}.tgz"));
        write_atomic(&tgz, &get(&client, url)?)?;
        let tar = run_bounded(
            Command::new("gzip").arg("-dc").arg(&tgz),
            Duration::from_secs(60),
        )?;
        let path = dir.join(format!("{v}.tar"));
        write_atomic(&path, &tar)?;
        let _ = std::fs::remove_file(&tgz);
        files.push((v.to_string(), path));
    }
    let list: String = files.iter().map(|(v, _)| format!("{v}\n")).collect();
    write_atomic(&dir.join("versions.txt"), list.as_bytes())?;
    Ok(files)
}

/// The `ruff` executables of the last RUFF_VERSIONS consecutive patch releases.
fn ruff_files(cache: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = cache.join("ruff");
    if let Some(files) = cached(&dir, "bin") {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir)?;
    let client = http()?;
    let index = reqwest::Url::parse("https://pypi.org/pypi/ruff/json")?;
    let doc: serde_json::Value = serde_json::from_slice(&get(&client, index.as_str())?)?;
    let releases = doc["releases"]
        .as_object()
        .context("no releases in the document")?;
    let wheel = |v: &str| -> Option<String> {
        releases.get(v)?.as_array()?.iter().find_map(|f| {
            let name = f["filename"].as_str()?;
            (name.contains("manylinux")
                && name.contains("x86_64")
                && name.ends_with(".whl")
                && !f["yanked"].as_bool().unwrap_or(false))
            .then(|| f["url"].as_str().map(str::to_string))?
        })
    };
    let mut parsed: Vec<(u64, u64, u64)> = releases
        .keys()
        .filter_map(|v| {
            let mut p = v.split('.').map(|x| x.parse::<u64>().ok());
            let r = (p.next()??, p.next()??, p.next()??);
            p.next().is_none().then_some(r)
        })
        .collect();
    parsed.sort();
    // The newest run of RUFF_VERSIONS consecutive patch releases that all have the wheel.
    let n = RUFF_VERSIONS as u64;
    let last = parsed
        .iter()
        .rev()
        .find(|&&(ma, mi, pa)| {
            pa + 1 >= n
                && (0..n).all(|k| {
                    let v = format!("{ma}.{mi}.{}", pa - k);
                    parsed.contains(&(ma, mi, pa - k)) && wheel(&v).is_some()
                })
        })
        .context("no run of consecutive patch releases with a manylinux x86_64 wheel")?;
    let (ma, mi, pa) = *last;
    let mut files = Vec::new();
    for p in pa + 1 - n..=pa {
        let v = format!("{ma}.{mi}.{p}");
        // Mirrors give file URLs relative to the index document.
        let url = index.join(&wheel(&v).context("wheel")?)?;
        let whl = dir.join(format!("{v}.whl"));
        write_atomic(&whl, &get(&client, url.as_str())?)?;
        let exe = run_bounded(
            Command::new("unzip")
                .arg("-p")
                .arg(&whl)
                .arg(format!("ruff-{v}.data/scripts/ruff")),
            Duration::from_secs(60),
        )
        .or_else(|_| {
            run_bounded(
                Command::new("python3").arg("-c").arg(format!(
                    "import sys,zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read('ruff-{v}.data/scripts/ruff'))"
                )).arg(&whl),
                Duration::from_secs(60),
            )
        })?;
        if !delta::is_executable(&exe) {
            bail!("ruff {v}: the wheel's ruff is not an executable");
        }
        let path = dir.join(format!("{v}.bin"));
        write_atomic(&path, &exe)?;
        let _ = std::fs::remove_file(&whl);
        files.push((v, path));
    }
    let list: String = files.iter().map(|(v, _)| format!("{v}\n")).collect();
    write_atomic(&dir.join("versions.txt"), list.as_bytes())?;
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// Synthetic content.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone)]
struct Rule {
    sid: u64,
    rev: u64,
    /// Chooses the rule's fixed parts (message, protocol, ports, class).
    shape: u64,
    /// Chooses its detection content (changes with a revision).
    content: u64,
}

fn render_rule(r: &Rule, out: &mut String) {
    const PROTOS: [&str; 6] = ["tcp", "udp", "http", "tls", "dns", "smb"];
    const CATS: [&str; 8] = [
        "MALWARE",
        "EXPLOIT",
        "TROJAN",
        "POLICY",
        "WEB_SERVER",
        "PHISHING",
        "SCAN",
        "DNS",
    ];
    const FAMILIES: [&str; 10] = [
        "Emotet",
        "Qakbot",
        "CobaltStrike",
        "AgentTesla",
        "Lumma",
        "AsyncRAT",
        "Mirai",
        "IcedID",
        "RedLine",
        "SocGholish",
    ];
    const ACTS: [&str; 6] = [
        "CnC Beacon",
        "Checkin",
        "Payload Download",
        "Exfiltration",
        "Stage 2 Request",
        "Config Fetch",
    ];
    const CLASSES: [&str; 4] = [
        "trojan-activity",
        "attempted-admin",
        "web-application-attack",
        "policy-violation",
    ];
    let mut s = Rng(r.shape | 1);
    let mut c = Rng(r.content | 1);
    let proto = s.pick(&PROTOS);
    let port = [80u64, 443, 445, 53, 8080, 25][s.below(6) as usize];
    let _ = write!(
        out,
        "alert {proto} $HOME_NET any -> $EXTERNAL_NET {port} (msg:\"ET {} {} {} {}\"; flow:established,to_server; ",
        s.pick(&CATS),
        s.pick(&FAMILIES),
        s.pick(&ACTS),
        s.below(1000)
    );
    for _ in 0..1 + c.below(3) {
        out.push_str("content:\"|");
        for i in 0..6 + c.below(12) {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{:02x}", c.below(256));
        }
        out.push_str("|\"; ");
        if c.below(2) == 0 {
            let _ = write!(out, "offset:{}; depth:{}; ", c.below(64), 8 + c.below(64));
        }
    }
    let _ = writeln!(
        out,
        "reference:url,threats.example/{}; classtype:{}; sid:{}; rev:{}; metadata:created_at 20{:02}_{:02}_{:02};)",
        c.below(1 << 24),
        s.pick(&CLASSES),
        r.sid,
        r.rev,
        15 + s.below(11),
        1 + s.below(12),
        1 + s.below(28)
    );
}

fn render_ruleset(day: usize, rules: &[Rule]) -> Vec<u8> {
    let mut out = String::with_capacity(RULESET_BYTES + RULESET_BYTES / 8);
    let _ = writeln!(
        out,
        "# Synthetic IDS rule set, release {day}, {} rules",
        rules.len()
    );
    for r in rules {
        render_rule(r, &mut out);
    }
    out.into_bytes()
}

/// Day 0 of the rule set and the 30 days after it, each a small churn of the day before:
/// 0.25 % of the rules revised (new content, rev + 1), 0.2 % added, 0.05 % removed.
fn ruleset_days() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_0001);
    let mut next_sid = 2_000_000u64;
    let mut new_rule = |rng: &mut Rng| {
        next_sid += 1 + rng.below(3);
        Rule {
            sid: next_sid,
            rev: 1,
            shape: rng.next(),
            content: rng.next(),
        }
    };
    let mut rules = Vec::new();
    let mut probe = String::new();
    let mut size = 0usize;
    while size < RULESET_BYTES {
        let r = new_rule(&mut rng);
        probe.clear();
        render_rule(&r, &mut probe);
        size += probe.len();
        rules.push(r);
    }
    let mut days = vec![render_ruleset(0, &rules)];
    for day in 1..=DAYS {
        let n = rules.len() as u64;
        for _ in 0..n * 25 / 10_000 {
            let i = rng.below(rules.len() as u64) as usize;
            rules[i].rev += 1;
            rules[i].content = rng.next();
        }
        for _ in 0..n * 5 / 10_000 {
            let i = rng.below(rules.len() as u64) as usize;
            rules.remove(i);
        }
        for _ in 0..n * 20 / 10_000 {
            let i = rng.below(rules.len() as u64 + 1) as usize;
            let r = new_rule(&mut rng);
            rules.insert(i, r);
        }
        days.push(render_ruleset(day, &rules));
    }
    days
}

/// A 100 MB signature database (`md5:size:name` lines, ClamAV .hdb style) and its next
/// release: 0.1 % of the lines removed, 0.4 % new lines appended.
fn sigdb_pair() -> (Vec<u8>, Vec<u8>) {
    const FAMILIES: [&str; 8] = [
        "Win.Trojan.Agent",
        "Win.Malware.Emotet",
        "Doc.Downloader.Generic",
        "Unix.Trojan.Mirai",
        "Win.Ransomware.Lockbit",
        "Html.Phishing.Bank",
        "Andr.Spyware.Joker",
        "Win.Packed.Themida",
    ];
    let mut rng = Rng(0x5eed_0002);
    let mut id = 1_000_000u64;
    let mut line = |rng: &mut Rng| {
        id += 1;
        format!(
            "{:016x}{:016x}:{}:{}-{}-0\n",
            rng.next(),
            rng.next(),
            1_000 + rng.below(5_000_000),
            rng.pick(&FAMILIES),
            id
        )
    };
    let mut lines = Vec::new();
    let mut size = 0usize;
    while size < SIGDB_BYTES {
        let l = line(&mut rng);
        size += l.len();
        lines.push(l);
    }
    let base: Vec<u8> = lines.concat().into_bytes();
    let n = lines.len() as u64;
    for _ in 0..n / 1_000 {
        let i = rng.below(lines.len() as u64) as usize;
        lines.remove(i);
    }
    for _ in 0..n * 4 / 1_000 {
        let l = line(&mut rng);
        lines.push(l);
    }
    (base, lines.concat().into_bytes())
}

// ---------------------------------------------------------------------------------------------
// Measurements of one pair.

struct Pair {
    name: String,
    base: PathBuf,
    target: PathBuf,
    /// Whether to make bsdiff deltas (ours and Debian's): skipped on the 100 MB file to bound
    /// the run (`Choice::Auto` makes zstd only for files over 64 MiB anyway).
    bsdiff: bool,
}

#[derive(Default)]
struct Row {
    name: String,
    full: u64,
    base_len: u64,
    executable: bool,
    zst19: Option<u64>,
    make: BTreeMap<&'static str, JobResult>,
    apply: BTreeMap<&'static str, JobResult>,
    deb: Option<JobResult>,
    /// Debian's bspatch applying Debian's patch: output MB/s (one pass, to a file).
    deb_apply: Option<f64>,
    /// Why a figure is missing.
    notes: Vec<String>,
}

impl Row {
    fn size(&self, alg: &str) -> Option<u64> {
        self.make.get(alg).map(|j| j.bytes)
    }
    /// The smaller of both (`Choice::Smallest`).
    fn smallest(&self) -> Option<u64> {
        [self.size("zstd"), self.size("bsdiff")]
            .into_iter()
            .flatten()
            .min()
    }
    /// What `Choice::Auto` would ship: the smaller of both, zstd only for files over
    /// `delta::AUTO_BOTH_UP_TO`.
    fn auto(&self) -> Option<(&'static str, u64)> {
        let z = self.size("zstd").map(|s| ("zstd", s));
        let b = self.size("bsdiff").map(|s| ("bsdiff", s));
        let both = self.full.max(self.base_len) <= delta::AUTO_BOTH_UP_TO as u64;
        if !both {
            return z;
        }
        [z, b].into_iter().flatten().min_by_key(|&(_, s)| s)
    }
}

/// A cheap content hash (FNV-1a over 8-byte words) to key cached figures.
fn content_key(bytes: &[u8]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h ^= u64::from_le_bytes(w);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}-{}", bytes.len())
}

/// The size of `path` compressed by the zstd CLI at level 19 with long mode (cached).
fn zst19(cache: &Path, path: &Path) -> Result<u64> {
    let key = content_key(&std::fs::read(path)?);
    let memo = cache.join("zst19").join(key);
    if let Some(n) = std::fs::read_to_string(&memo)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return Ok(n);
    }
    let out = run_bounded(
        Command::new("zstd")
            .args(["-19", "--long=27", "-T2", "-q", "-c"])
            .arg(path),
        CHILD_TIMEOUT,
    )?;
    std::fs::create_dir_all(memo.parent().context("parent")?)?;
    write_atomic(&memo, out.len().to_string().as_bytes())?;
    Ok(out.len() as u64)
}

/// Debian's bsdiff on the pair, timed (wall) and its peak RSS via `/usr/bin/time -f %M`.
fn debian_bsdiff(pair: &Pair, out: &Path) -> Result<JobResult> {
    let bsdiff = Path::new("/usr/bin/bsdiff");
    if !bsdiff.is_file() {
        bail!("Debian's bsdiff is not installed (scripts/setup-system.sh installs it)");
    }
    let time = Path::new("/usr/bin/time");
    let t = Instant::now();
    let rss = if time.is_file() {
        let mut cmd = Command::new(time);
        cmd.args(["-f", "DEBRSS %M", "-o"])
            .arg(out.with_extension("rss"))
            .arg(bsdiff)
            .arg(&pair.base)
            .arg(&pair.target)
            .arg(out);
        run_bounded(&mut cmd, CHILD_TIMEOUT)?;
        std::fs::read_to_string(out.with_extension("rss"))?
            .split_whitespace()
            .skip_while(|w| *w != "DEBRSS")
            .nth(1)
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    } else {
        run_bounded(
            Command::new(bsdiff)
                .arg(&pair.base)
                .arg(&pair.target)
                .arg(out),
            CHILD_TIMEOUT,
        )?;
        0
    };
    let secs = t.elapsed().as_secs_f64();
    Ok(JobResult {
        secs,
        bytes: std::fs::metadata(out)?.len(),
        rss,
    })
}

fn measure(cache: &Path, work: &Path, pair: &Pair) -> Row {
    let mut row = Row {
        name: pair.name.clone(),
        ..Row::default()
    };
    let head = std::fs::File::open(&pair.target).and_then(|f| {
        let mut b = Vec::new();
        f.take(16).read_to_end(&mut b)?;
        Ok(b)
    });
    row.executable = head.as_deref().is_ok_and(delta::is_executable);
    row.full = std::fs::metadata(&pair.target).map_or(0, |m| m.len());
    row.base_len = std::fs::metadata(&pair.base).map_or(0, |m| m.len());
    eprintln!(
        "  {}: compressing the full file (zstd -19 --long)",
        pair.name
    );
    match zst19(cache, &pair.target) {
        Ok(n) => row.zst19 = Some(n),
        Err(e) => row.notes.push(format!("zstd -19: {e:#}")),
    }
    let algs: &[&'static str] = if pair.bsdiff {
        &["zstd", "bsdiff"]
    } else {
        &["zstd"]
    };
    for &alg in algs {
        let delta = work.join(format!("delta.{alg}"));
        eprintln!("  {}: make + apply {alg}", pair.name);
        match run_job(&format!("make:{alg}"), &pair.base, &pair.target, &delta) {
            Ok(made) => {
                row.make.insert(alg, made);
                match run_job(&format!("apply:{alg}"), &pair.base, &pair.target, &delta) {
                    Ok(applied) => {
                        row.apply.insert(alg, applied);
                    }
                    Err(e) => row.notes.push(format!("apply {alg}: {e:#}")),
                }
            }
            Err(e) => row.notes.push(format!("make {alg}: {e:#}")),
        }
        let _ = std::fs::remove_file(&delta);
    }
    if pair.bsdiff {
        eprintln!("  {}: Debian bsdiff", pair.name);
        let out = work.join("delta.debian");
        match debian_bsdiff(pair, &out) {
            Ok(j) => {
                row.deb = Some(j);
                let made = work.join("bspatch.out");
                let t = Instant::now();
                match run_bounded(
                    Command::new("/usr/bin/bspatch")
                        .arg(&pair.base)
                        .arg(&made)
                        .arg(&out),
                    CHILD_TIMEOUT,
                ) {
                    Ok(_) => row.deb_apply = Some(mb(row.full) / t.elapsed().as_secs_f64()),
                    Err(e) => row.notes.push(format!("Debian bspatch: {e:#}")),
                }
                let _ = std::fs::remove_file(&made);
            }
            Err(e) => row.notes.push(format!("Debian bsdiff: {e:#}")),
        }
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(out.with_extension("rss"));
    } else {
        row.notes.push(
            "bsdiff (ours and Debian's) skipped on the 100 MB file to bound the run; Auto makes zstd only for files over 64 MiB"
                .into(),
        );
    }
    row
}

// ---------------------------------------------------------------------------------------------
// Report.

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn human(bytes: u64) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} B"),
        10_000..=9_999_999 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", mb(bytes)),
    }
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> String) -> String {
    v.map_or_else(|| "—".to_string(), f)
}

fn print_tables(rows: &[Row]) {
    println!();
    println!("Sizes (MB = 10^6 bytes; full = the new version; zst19 = `zstd -19 --long=27` of it;");
    println!(
        "Auto = what delta::make(Choice::Auto) ships: the smaller of both (zstd only for files over 64 MiB);"
    );
    println!("deb = Debian's /usr/bin/bsdiff on the same pair)");
    println!(
        "{:<42} {:>9} {:>9} {:>10} {:>10} {:>10} {:>11} {:>9} {:>10} {:>10}",
        "pair",
        "full",
        "zst19",
        "zstd Δ",
        "bsdiff Δ",
        "deb Δ",
        "Auto",
        "Auto/full",
        "bsdiff/deb",
        "Auto/deb"
    );
    for r in rows {
        let deb = r.deb.as_ref().map(|d| d.bytes);
        let ratio = |a: Option<u64>| match (a, deb) {
            (Some(a), Some(d)) if d > 0 => format!("{:.3}×", a as f64 / d as f64),
            _ => "—".into(),
        };
        let auto = r.auto();
        println!(
            "{:<42} {:>9} {:>9} {:>10} {:>10} {:>10} {:>11} {:>9} {:>10} {:>10}",
            r.name,
            human(r.full),
            opt(r.zst19, human),
            opt(r.size("zstd"), human),
            opt(r.size("bsdiff"), human),
            opt(deb, human),
            opt(auto, |(a, s)| format!("{a} {}", human(s))),
            opt(auto, |(_, s)| format!(
                "{:.3}%",
                100.0 * s as f64 / r.full.max(1) as f64
            )),
            ratio(r.size("bsdiff")),
            ratio(auto.map(|(_, s)| s)),
        );
    }
    println!();
    println!(
        "Time and memory (make = wall time of delta::make(Only(alg)) alone; apply = output MB/s of"
    );
    println!(
        "delta::apply into io::sink, delta streamed from a file, mean of 1-20 passes (≥ 1 s);"
    );
    println!(
        "RSS = peak resident set (VmHWM) of a child process doing only that job, base and target"
    );
    println!("(make) or base (apply) read into memory included; deb = Debian's bsdiff, wall time, RSS by");
    println!(
        "/usr/bin/time -f %M; deb ap = Debian's bspatch of its patch, one pass, output to a file)"
    );
    println!(
        "{:<42} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>10} {:>9}",
        "pair",
        "mk zstd",
        "mk bsd",
        "deb",
        "mkRSS z",
        "mkRSS b",
        "deb RSS",
        "ap zstd",
        "ap bsd",
        "apRSS z",
        "apRSS b",
        "ap bound z",
        "deb ap"
    );
    for r in rows {
        let secs = |j: Option<&JobResult>| opt(j, |j| format!("{:.2}s", j.secs));
        let rss = |j: Option<&JobResult>| {
            opt(j.filter(|j| j.rss > 0), |j| format!("{:.0} MB", mb(j.rss)))
        };
        let rate = |j: Option<&JobResult>| {
            opt(j, |j| format!("{:.0} MB/s", mb(j.bytes) / j.secs.max(1e-9)))
        };
        let base_len = r.full; // bound below uses the target's length for both sides' order
        let bound = r
            .size("zstd")
            .map(|d| delta::apply_memory(Algorithm::Zstd, base_len, d, r.full));
        println!(
            "{:<42} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>10} {:>9}",
            r.name,
            secs(r.make.get("zstd")),
            secs(r.make.get("bsdiff")),
            secs(r.deb.as_ref()),
            rss(r.make.get("zstd")),
            rss(r.make.get("bsdiff")),
            rss(r.deb.as_ref()),
            rate(r.apply.get("zstd")),
            rate(r.apply.get("bsdiff")),
            rss(r.apply.get("zstd")),
            rss(r.apply.get("bsdiff")),
            opt(bound, |b| format!("{:.0} MB", mb(b))),
            opt(r.deb_apply, |v| format!("{v:.0} MB/s")),
        );
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("  {}: {n}", r.name)))
        .collect();
    if !notes.is_empty() {
        println!();
        println!("Notes:");
        for n in notes {
            println!("{n}");
        }
    }
}

fn run() -> Result<()> {
    let started = Instant::now();
    let cache = cache_dir();
    std::fs::create_dir_all(&cache)?;
    let work = tempfile::tempdir_in(&cache)?;
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();

    eprintln!(
        "delta bench: fetching (or reading from {})",
        cache.display()
    );
    match npm_files(&cache) {
        Ok(files) => {
            for w in files.windows(2) {
                pairs.push(Pair {
                    name: format!("{NPM_PACKAGE} {} -> {}", w[0].0, w[1].0),
                    base: w[0].1.clone(),
                    target: w[1].1.clone(),
                    bsdiff: true,
                });
            }
        }
        Err(e) => skipped.push(format!(
            "{NPM_PACKAGE} (npm registry unreachable or unusable: {e:#})"
        )),
    }
    match ruff_files(&cache) {
        Ok(files) => {
            for w in files.windows(2) {
                pairs.push(Pair {
                    name: format!("ruff {} -> {} (x86_64 ELF)", w[0].0, w[1].0),
                    base: w[0].1.clone(),
                    target: w[1].1.clone(),
                    bsdiff: true,
                });
            }
        }
        Err(e) => skipped.push(format!("ruff (PyPI unreachable or unusable: {e:#})")),
    }

    eprintln!("delta bench: building the synthetic rule set ({DAYS} days) and signature database");
    let days = ruleset_days();
    let rules0 = work.path().join("rules.day0");
    let rules1 = work.path().join("rules.day1");
    std::fs::write(&rules0, &days[0])?;
    std::fs::write(&rules1, &days[1])?;
    pairs.push(Pair {
        name: "synthetic rule set day 0 -> 1".into(),
        base: rules0,
        target: rules1,
        bsdiff: true,
    });
    let (sig0, sig1) = sigdb_pair();
    let sigdb0 = work.path().join("sigdb.0");
    let sigdb1 = work.path().join("sigdb.1");
    std::fs::write(&sigdb0, &sig0)?;
    std::fs::write(&sigdb1, &sig1)?;
    drop((sig0, sig1));
    pairs.push(Pair {
        name: "synthetic 100 MB signature DB".into(),
        base: sigdb0,
        target: sigdb1,
        bsdiff: false,
    });

    let mut rows = Vec::new();
    for pair in &pairs {
        eprintln!("delta bench: {}", pair.name);
        rows.push(measure(&cache, work.path(), pair));
    }

    // The simulated month: each day's delta made as the publisher would (Choice::Auto), two
    // at a time (two cores).
    eprintln!("delta bench: the month's {DAYS} daily deltas");
    let month_started = Instant::now();
    let mut month: Vec<(u64, u64)> = vec![(0, 0); DAYS];
    std::thread::scope(|s| -> Result<()> {
        let chunks: Vec<_> = month
            .chunks_mut(DAYS.div_ceil(2))
            .enumerate()
            .map(|(c, chunk)| {
                let days = &days;
                s.spawn(move || -> Result<()> {
                    let first = c * DAYS.div_ceil(2);
                    for (i, slot) in chunk.iter_mut().enumerate() {
                        let d = first + i + 1;
                        let made = delta::make(Choice::Auto, &days[d - 1], &days[d])?;
                        *slot = (days[d].len() as u64, made.bytes.len() as u64);
                    }
                    Ok(())
                })
            })
            .collect();
        for h in chunks {
            h.join().map_err(|_| anyhow!("a month thread panicked"))??;
        }
        Ok(())
    })?;
    let month_secs = month_started.elapsed().as_secs_f64();

    print_tables(&rows);
    if !skipped.is_empty() {
        println!();
        println!("Skipped:");
        for s in &skipped {
            println!("  {s}");
        }
    }

    // Month report.
    let full_total: u64 = month.iter().map(|&(f, _)| f).sum();
    let delta_total: u64 = month.iter().map(|&(_, d)| d).sum();
    let rules_row = rows
        .iter()
        .find(|r| r.name.starts_with("synthetic rule set"));
    let zst_ratio = rules_row
        .and_then(|r| Some(r.zst19? as f64 / r.full.max(1) as f64))
        .unwrap_or(1.0);
    let full_zst = (full_total as f64 * zst_ratio) as u64;
    let (dmin, dmax) = month
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), &(_, d)| (lo.min(d), hi.max(d)));
    println!();
    println!(
        "Simulated month: {DAYS} daily releases of the ~{} rule set (0.5 % of rules churned a day),",
        human(days[0].len() as u64)
    );
    println!(
        "{AGENTS} agents behind one relay, each one version behind every day. Byte counts are computed"
    );
    println!(
        "from the {DAYS} real deltas made with delta::make(Auto) ({:.1} s for all, 2 threads; each",
        month_secs
    );
    println!(
        "{}..{}); no agent processes run. Full compressed = the day-1 zstd -19 ratio ({:.3}) applied to each day.",
        human(dmin),
        human(dmax),
        zst_ratio
    );
    println!(
        "{:<34} {:>16} {:>18} {:>12}",
        "", "site link", "local network", "vs full raw"
    );
    let line = |label: &str, per_day_total: u64| {
        println!(
            "{:<34} {:>16} {:>18} {:>11.3}%",
            label,
            human(per_day_total),
            human(per_day_total.saturating_mul(AGENTS)),
            100.0 * per_day_total as f64 / full_total.max(1) as f64
        );
    };
    line("(a) full files, uncompressed", full_total);
    line("(a') full files, zstd -19", full_zst);
    line("(b) daily deltas", delta_total);

    // Goals.
    println!();
    println!("Goals:");
    let verdict = |ok: bool| if ok { "MET    " } else { "NOT MET" };
    // 1. Data deltas ≤ 0.5 % of the full file.
    let pct = |r: &Row, s: u64| 100.0 * s as f64 / r.full.max(1) as f64;
    let data: Vec<(&str, f64, f64)> = rows
        .iter()
        .filter(|r| !r.executable)
        .filter_map(|r| {
            let (_, s) = r.auto()?;
            Some((r.name.as_str(), pct(r, s), pct(r, r.smallest()?)))
        })
        .collect();
    let month_pct: Vec<f64> = month
        .iter()
        .map(|&(f, d)| 100.0 * d as f64 / f.max(1) as f64)
        .collect();
    let worst_month = month_pct.iter().copied().fold(0.0, f64::max);
    let data_ok = !data.is_empty()
        && data.iter().all(|&(_, p, _)| p <= GOAL_DATA_PCT)
        && worst_month <= GOAL_DATA_PCT;
    println!(
        "  {} data deltas (Auto) ≤ {GOAL_DATA_PCT} % of the full file: month's worst day {:.3}%; per pair Auto (Smallest):",
        verdict(data_ok),
        worst_month
    );
    for (n, p, q) in &data {
        println!(
            "            {} {n}: {p:.3}% ({q:.3}%)",
            if *p <= GOAL_DATA_PCT { "ok  " } else { "over" }
        );
    }
    // 2. Binary deltas ≤ 1.1× Debian's bsdiff.
    let bins: Vec<(&str, f64)> = rows
        .iter()
        .filter(|r| r.executable)
        .filter_map(|r| {
            let (_, s) = r.auto()?;
            let d = r.deb.as_ref()?.bytes;
            Some((r.name.as_str(), s as f64 / d.max(1) as f64))
        })
        .collect();
    if bins.is_empty() {
        println!("  n/a     binary deltas ≤ {GOAL_BIN_RATIO}× Debian bsdiff: no executable pair with Debian's bsdiff measured");
    } else {
        println!(
            "  {} binary deltas (best of ours) ≤ {GOAL_BIN_RATIO}× Debian bsdiff: {}",
            verdict(bins.iter().all(|&(_, q)| q <= GOAL_BIN_RATIO)),
            bins.iter()
                .map(|(n, q)| format!("{n} {q:.3}×"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // 3. Apply ≥ 200 MB/s of output, for the algorithm Auto ships (and bsdiff shown apart).
    let rate = |j: &JobResult| mb(j.bytes) / j.secs.max(1e-9);
    let shipped: Vec<(&str, &str, f64)> = rows
        .iter()
        .filter_map(|r| {
            let (a, _) = r.auto()?;
            Some((r.name.as_str(), a, rate(r.apply.get(a)?)))
        })
        .collect();
    let slowest = shipped
        .iter()
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|&(n, a, v)| format!("slowest {v:.0} MB/s ({a}, {n})"))
        .unwrap_or_else(|| "nothing measured".into());
    let zstd_rates: Vec<f64> = rows
        .iter()
        .filter_map(|r| Some(rate(r.apply.get("zstd")?)))
        .collect();
    let bsd_rates: Vec<f64> = rows
        .iter()
        .filter_map(|r| Some(rate(r.apply.get("bsdiff")?)))
        .collect();
    let deb_rates: Vec<f64> = rows.iter().filter_map(|r| r.deb_apply).collect();
    let range = |v: &[f64]| {
        if v.is_empty() {
            "—".to_string()
        } else {
            format!(
                "{:.0}-{:.0} MB/s",
                v.iter().copied().fold(f64::INFINITY, f64::min),
                v.iter().copied().fold(0.0, f64::max)
            )
        }
    };
    println!(
        "  {} apply ≥ {GOAL_APPLY_MBS} MB/s of output for the delta Auto ships: {slowest}; ours: zstd {}, bsdiff {} (Debian's bspatch {})",
        verdict(!shipped.is_empty() && shipped.iter().all(|s| s.2 >= GOAL_APPLY_MBS)),
        range(&zstd_rates),
        range(&bsd_rates),
        range(&deb_rates),
    );
    // 4. A 100 MB file's delta made in ≤ 10 s.
    match rows
        .iter()
        .find(|r| r.name.contains("100 MB"))
        .and_then(|r| r.make.get("zstd"))
    {
        Some(j) => println!(
            "  {} a 100 MB file's delta (Auto = zstd) made in ≤ {GOAL_MAKE_100MB_S} s: {:.2} s",
            verdict(j.secs <= GOAL_MAKE_100MB_S),
            j.secs
        ),
        None => println!("  NOT MET a 100 MB file's delta: not measured"),
    }
    println!();
    println!(
        "(machine: {} cores; whole run {:.0} s)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
