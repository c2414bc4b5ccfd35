//! Delta updates, with real processes: the publisher makes deltas from previous versions, an
//! agent one version behind downloads only the delta (bytes counted at the relay that served
//! it), an agent three versions behind takes the cheaper of a chain of deltas and the full
//! file, and every bad delta (tampered, truncated, against a base the host does not hold, or
//! rebuilding a file that is not the signed one) ends with the full file installed and the
//! reason in the status. A child relay rebuilds from deltas its parent serves and python-tuf
//! verifies what it serves; an air-gapped site imports a bundle of deltas; a delta signed by a
//! role outside its scope is never used.
use std::path::Path;

use crate::common::*;

const PATTERN: &str = "antimalware.pattern";
const INSTALLED: &str = "av/antimalware.pattern.dat";

/// Deterministic pseudo-random bytes (xorshift): content that compresses to nothing only
/// against its previous version.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `prev` with a few bytes changed and a line added, like a daily pattern update.
fn daily(prev: &[u8], day: u64) -> Vec<u8> {
    let mut next = prev.to_vec();
    for i in 0..8u64 {
        let at = ((day * 7919 + i * 104_729) as usize) % next.len();
        next[at] ^= 0x5a;
    }
    next.extend_from_slice(format!("signature {day}\n").as_bytes());
    next
}

/// `prev` with 40 % of it replaced by new bytes: a delta costs about as much as 40 % of it.
fn overhaul(prev: &[u8], seed: u64) -> Vec<u8> {
    let mut next = prev.to_vec();
    let n = next.len() * 2 / 5;
    next[..n].copy_from_slice(&noise(seed, n));
    next
}

/// `updraft repo add` of a pattern version with extra arguments (e.g. `--deltas 1`); its output.
fn add(bed: &AgentBed, version: &str, body: &[u8], extra: &[&str]) -> String {
    let file = bed.path(&format!("{PATTERN}.dat"));
    bed.repo
        .add_file(&file, body, [PATTERN, version, "pattern"], extra)
}

fn full_path(version: &str) -> String {
    format!("content/{PATTERN}/{version}/{PATTERN}.dat")
}

fn delta_path(to: &str, from: &str) -> String {
    format!("{}.from-{from}.delta", full_path(to))
}

/// The signed length of a target in the repository's published metadata.
fn signed_length(repo: &Path, target: &str) -> u64 {
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/targets.json")).unwrap())
            .unwrap();
    t["signed"]["targets"][target]["length"]
        .as_u64()
        .unwrap_or_else(|| panic!("{target} not signed"))
}

/// The stored file of a target in the repository (hash-prefixed name).
fn stored(repo: &Path, target: &str) -> std::path::PathBuf {
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.join("metadata/targets.json")).unwrap())
            .unwrap();
    let hash = t["signed"]["targets"][target]["hashes"]["sha256"]
        .as_str()
        .unwrap();
    let (dir, name) = target.rsplit_once('/').unwrap();
    repo.join("targets")
        .join(dir)
        .join(format!("{hash}.{name}"))
}

fn target_bytes(base: &str, server: &str) -> f64 {
    metric(
        base,
        &format!("updraft_http_response_bytes_total{{server=\"{server}\",kind=\"target\"}}"),
    )
}

fn deltas_note(bed: &AgentBed, cfg: &Path) -> String {
    bed.status(cfg)["deltas"].to_string()
}

#[test]
fn behind_a_relay_an_agent_one_version_behind_downloads_only_the_delta() {
    let bed = AgentBed::new();
    let v1 = noise(1, 256 << 10);
    add(&bed, "18.600.00", &v1, &[]);
    bed.repo.publish();
    let relay = relay_daemon(&bed.origin.base, &bed.repo.root_v1, &bed.path("relay"));
    let t = published_timestamp(&bed.repo.dir);
    wait_status(&relay.base, "relay synced", |v| {
        v["trusted_versions"]["timestamp"].as_u64() == Some(t)
    });
    let mut opts = bed.opts();
    opts.relays = vec![relay.base.clone()];
    let cfg = bed.config(&opts);
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.600.00"]));

    // The next day's version: the publisher makes a delta from 18.600.00; the one from
    // 18.523.00 (unrelated bytes) costs more than half the file and is left out.
    let origin_before = target_bytes(&bed.origin.base, "origin");
    let v2 = daily(&v1, 1);
    let out = add(&bed, "18.601.00", &v2, &[]);
    assert!(out.contains("staged delta from 18.600.00"), "{out}");
    assert!(out.contains("left out delta from 18.523.00"), "{out}");
    bed.repo.publish();
    let delta_len = signed_length(&bed.repo.dir, &delta_path("18.601.00", "18.600.00"));
    assert!(
        delta_len * 100 < v2.len() as u64,
        "delta of {delta_len} bytes"
    );

    // The relay rebuilt the new file from the delta: the origin served the delta, not the file.
    let t = published_timestamp(&bed.repo.dir);
    wait_status(&relay.base, "relay follows", |v| {
        v["trusted_versions"]["timestamp"].as_u64() == Some(t)
    });
    let origin_sent = target_bytes(&bed.origin.base, "origin") - origin_before;
    assert_eq!(
        origin_sent, delta_len as f64,
        "the origin sent more than the delta"
    );
    assert_eq!(
        metric(&relay.base, "updraft_relay_rebuilt_targets_total"),
        1.0
    );

    // The agent downloads only the delta from the relay and installs the verified file.
    let before = target_bytes(&relay.base, "relay");
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.601.00"]));
    let served = target_bytes(&relay.base, "relay") - before;
    assert_eq!(
        served, delta_len as f64,
        "the relay served more than the delta"
    );
    assert_eq!(std::fs::read(bed.path(INSTALLED)).unwrap(), v2);
    let note = deltas_note(&bed, &cfg);
    assert!(note.contains("rebuilt from delta from 18.600.00"), "{note}");
}

/// An agent that installed version 18.600.00 of a pattern of `len` pseudo-random bytes, and
/// that body.
fn agent_holding_a_pattern(seed: u64, len: usize) -> (AgentBed, std::path::PathBuf, Vec<u8>) {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    let body = noise(seed, len);
    add(&bed, "18.600.00", &body, &[]);
    bed.repo.publish();
    bed.once(&cfg).unwrap();
    (bed, cfg, body)
}

#[test]
fn three_versions_behind_an_agent_takes_the_cheaper_of_the_chain_and_the_full_file() {
    let (bed, cfg, mut body) = agent_holding_a_pattern(2, 200 << 10);

    // Three small daily changes, each with a delta from the version before only: the chain of
    // three deltas is far cheaper than the file.
    let mut chain = 0;
    for day in 1..=3u64 {
        body = daily(&body, day);
        let v = format!("18.60{day}.00");
        add(&bed, &v, &body, &["--deltas", "1"]);
        bed.repo.publish();
        chain += signed_length(
            &bed.repo.dir,
            &delta_path(&v, &format!("18.60{}.00", day - 1)),
        );
    }
    let before = target_bytes(&bed.origin.base, "origin");
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.603.00"]));
    assert_eq!(std::fs::read(bed.path(INSTALLED)).unwrap(), body);
    assert_eq!(
        target_bytes(&bed.origin.base, "origin") - before,
        chain as f64
    );
    let note = deltas_note(&bed, &cfg);
    assert!(
        note.contains("deltas from 18.600.00 via 18.601.00, 18.602.00 (3 deltas"),
        "{note}"
    );

    // Three overhauls: each delta costs 40 % of the file, the chain 120 %: the full file wins.
    for i in 1..=3u64 {
        body = overhaul(&body, 1000 * i + 1);
        add(&bed, &format!("18.70{i}.00"), &body, &["--deltas", "1"]);
        bed.repo.publish();
    }
    assert!(bed.repo.dir.join("metadata/targets.json").exists());
    let full = signed_length(&bed.repo.dir, &full_path("18.703.00"));
    let before = target_bytes(&bed.origin.base, "origin");
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.703.00"]));
    assert_eq!(std::fs::read(bed.path(INSTALLED)).unwrap(), body);
    let note = deltas_note(&bed, &cfg);
    let sent = target_bytes(&bed.origin.base, "origin") - before;
    assert_eq!(sent, full as f64, "{note}");
    assert!(note.contains("costs more than the full file"), "{note}");
}

/// Publish `version` (deltas from the previous version only) and return its body and the
/// delta's stored file.
fn next_with_delta(bed: &AgentBed, prev: &str, version: &str, body: &[u8]) -> std::path::PathBuf {
    add(bed, version, body, &["--deltas", "1"]);
    bed.repo.publish();
    stored(&bed.repo.dir, &delta_path(version, prev))
}

/// One agent cycle must install `version` with exactly `body`, and the status must say why
/// the deltas were not used (`why`).
fn installs_full_with_reason(bed: &AgentBed, cfg: &Path, version: &str, body: &[u8], why: &str) {
    let r = bed.once(cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, version]));
    assert_eq!(std::fs::read(bed.path(INSTALLED)).unwrap(), body);
    let note = deltas_note(bed, cfg);
    assert!(
        note.contains("full download") && note.contains(why),
        "{version}: {note}"
    );
}

#[test]
fn a_bad_delta_or_a_missing_base_ends_with_the_full_file_and_the_reason_recorded() {
    let (bed, cfg, mut body) = agent_holding_a_pattern(3, 128 << 10);

    // Tampered on the server: the delta does not match its signed hash.
    body = daily(&body, 1);
    let file = next_with_delta(&bed, "18.600.00", "18.601.00", &body);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    installs_full_with_reason(
        &bed,
        &cfg,
        "18.601.00",
        &body,
        "dat.from-18.600.00.delta: sha256 hash does not match the signed hash",
    );

    // Truncated on the server.
    body = daily(&body, 2);
    let file = next_with_delta(&bed, "18.601.00", "18.602.00", &body);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    installs_full_with_reason(&bed, &cfg, "18.602.00", &body, "dat.from-18.601.00.delta");

    // Deltas only from a version this host never held.
    body = daily(&body, 3);
    add(&bed, "18.603.00", &body, &["--deltas", "0"]);
    body = daily(&body, 4);
    add(&bed, "18.604.00", &body, &["--deltas", "1"]);
    bed.repo.publish();
    installs_full_with_reason(
        &bed,
        &cfg,
        "18.604.00",
        &body,
        "starts from a version this host holds (offered from 18.603.00)",
    );

    // A delta signed by the publisher that decodes cleanly but rebuilds other bytes of the
    // same length: the result does not match the signed full file.
    let prev = body.clone();
    body = daily(&body, 5);
    add(&bed, "18.605.00", &body, &["--deltas", "0"]);
    let mut forged = body.clone();
    forged[0] ^= 1;
    let made = delta::make(delta::Choice::Only(delta::Algorithm::Zstd), &prev, &forged).unwrap();
    let info = model::delta::DeltaInfo {
        component: PATTERN.into(),
        from: "18.604.00".into(),
        to: "18.605.00".into(),
        algorithm: made.algorithm,
        base: full_path("18.604.00"),
        produces: full_path("18.605.00"),
    };
    bed.repo.sign_as(
        "targets",
        &info.target_path(),
        info.to_custom(),
        &made.bytes,
    );
    installs_full_with_reason(
        &bed,
        &cfg,
        "18.605.00",
        &body,
        "does not match the signed content/antimalware.pattern/18.605.00",
    );

    // A base changed on the host's disk: what the delta rebuilds does not match either.
    let held = bed.path("state/versions/antimalware.pattern/18.605.00/antimalware.pattern.dat");
    let mut damaged = std::fs::read(&held).unwrap();
    damaged[10] ^= 0xff;
    std::fs::write(&held, &damaged).unwrap();
    body = daily(&body, 6);
    next_with_delta(&bed, "18.605.00", "18.606.00", &body);
    installs_full_with_reason(&bed, &cfg, "18.606.00", &body, "does not match the signed");
}

#[test]
fn a_delta_signed_by_a_role_outside_its_scope_is_never_used() {
    let (bed, cfg, body) = agent_holding_a_pattern(7, 128 << 10);
    bed.repo.delegate("ips-team", "content/ips.rules/*/*");
    let next = daily(&body, 1);
    add(&bed, "18.601.00", &next, &["--deltas", "0"]);
    // The rules team signs a delta that would rebuild the pattern correctly: were scope
    // skipped, the agent would download only it.
    let made = delta::make(delta::Choice::Only(delta::Algorithm::Zstd), &body, &next).unwrap();
    let info = model::delta::DeltaInfo {
        component: PATTERN.into(),
        from: "18.600.00".into(),
        to: "18.601.00".into(),
        algorithm: made.algorithm,
        base: full_path("18.600.00"),
        produces: full_path("18.601.00"),
    };
    bed.repo.sign_as(
        "ips-team",
        &info.target_path(),
        info.to_custom(),
        &made.bytes,
    );
    let before = target_bytes(&bed.origin.base, "origin");
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.601.00"]));
    assert_eq!(std::fs::read(bed.path(INSTALLED)).unwrap(), next);
    let full = signed_length(&bed.repo.dir, &full_path("18.601.00"));
    assert_eq!(
        target_bytes(&bed.origin.base, "origin") - before,
        full as f64
    );
    let st = bed.status(&cfg);
    assert!(
        st["ignored"].to_string().contains(&info.target_path()),
        "{st:#}"
    );
}

#[test]
fn an_agent_killed_during_a_rebuild_downloads_the_full_file_next_time() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    // A component installed before the pattern whose file the server lacks: its download
    // fails every cycle (regression: that failure used to clear the pattern's marker).
    bed.edit_config(&cfg, |c| {
        c.modules[0].components.insert(0, "aaa.rules".into())
    });
    let missing = bed.repo.add("aaa.rules", "1.0", "rules", b"rules");
    let v1 = noise(6, 128 << 10);
    add(&bed, "18.600.00", &v1, &[]);
    bed.repo.publish();
    std::fs::remove_file(stored(&bed.repo.dir, &missing)).unwrap();
    bed.once(&cfg).unwrap();
    let v2 = daily(&v1, 1);
    add(&bed, "18.601.00", &v2, &[]);
    bed.repo.publish();
    // Killed (as by the kernel for memory) in the middle of the rebuild: nothing installed.
    let fault = [("UPDRAFT_FAULT", "delta-before-persist")];
    bed.once_env(&cfg, &fault).unwrap_err();
    assert_eq!(std::fs::read(bed.path(INSTALLED)).unwrap(), v1);
    // The next cycle does not try the same rebuild again: it downloads the file.
    let before = target_bytes(&bed.origin.base, "origin");
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["installed"][0], serde_json::json!([PATTERN, "18.601.00"]));
    assert_eq!(std::fs::read(bed.path(INSTALLED)).unwrap(), v2);
    let full = signed_length(&bed.repo.dir, &full_path("18.601.00"));
    assert_eq!(
        target_bytes(&bed.origin.base, "origin") - before,
        full as f64
    );
    let note = deltas_note(&bed, &cfg);
    assert!(note.contains("did not finish"), "{note}");
}

#[test]
fn a_child_relay_rebuilds_from_its_parents_deltas_and_python_tuf_verifies_what_it_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let file = tmp.path().join("rules.bin");
    let v1 = noise(4, 300 << 10);
    let add_rules = |body: &[u8], version: &str| {
        repo.add_file(&file, body, ["ips.rules", version, "rules"], &[]);
    };
    add_rules(&v1, "2026.12.1");
    repo.publish();
    let origin = Server::start(&repo.dir);
    let parent = relay_daemon(&origin.base, &repo.root_v1, &tmp.path().join("parent"));
    let t = published_timestamp(&repo.dir);
    let synced = |base: &str, t: u64| {
        wait_status(base, "relay synced", |v| {
            v["trusted_versions"]["timestamp"].as_u64() == Some(t)
        })
    };
    synced(&parent.base, t);
    let child = relay_daemon(&parent.base, &repo.root_v1, &tmp.path().join("child"));
    synced(&child.base, t);

    let parent_before = target_bytes(&parent.base, "relay");
    let v2 = daily(&v1, 1);
    add_rules(&v2, "2026.12.2");
    repo.publish();
    let target = "content/ips.rules/2026.12.2/rules.bin";
    let delta = format!("{target}.from-2026.12.1.delta");
    let delta_len = signed_length(&repo.dir, &delta);
    let t = published_timestamp(&repo.dir);
    synced(&parent.base, t);
    synced(&child.base, t);
    // The site link carried the delta only; the child rebuilt the file.
    assert_eq!(
        target_bytes(&parent.base, "relay") - parent_before,
        delta_len as f64
    );
    assert_eq!(
        metric(&child.base, "updraft_relay_rebuilt_targets_total"),
        1.0
    );

    // python-tuf's ngclient downloads the full file and the delta from the child and verifies both.
    for (i, (path, want)) in [(target, Some(&v2)), (delta.as_str(), None)]
        .into_iter()
        .enumerate()
    {
        let md = tmp.path().join(format!("py-md-{i}"));
        let dl = tmp.path().join(format!("py-dl-{i}"));
        std::fs::create_dir_all(&md).unwrap();
        std::fs::create_dir_all(&dl).unwrap();
        std::fs::copy(&repo.root_v1, md.join("root.json")).unwrap();
        let out = std::process::Command::new(python())
            .args([
                &format!(
                    "{}/tests/python/ngclient_download.py",
                    env!("CARGO_MANIFEST_DIR")
                ),
                md.to_str().unwrap(),
                &child.base,
                dl.to_str().unwrap(),
                path,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = std::fs::read(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        match want {
            Some(w) => assert_eq!(&got, w),
            None => assert_eq!(got.len() as u64, delta_len),
        }
    }
}

#[test]
fn an_air_gapped_site_one_version_behind_imports_a_small_bundle_of_deltas() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let file = tmp.path().join("pattern.bin");
    let v1 = noise(5, 512 << 10);
    let add_pattern = |body: &[u8], version: &str| {
        repo.add_file(&file, body, [PATTERN, version, "pattern"], &[]);
        repo.publish();
    };
    add_pattern(&v1, "18.600.00");
    let origin = Server::start(&repo.dir);
    let connected = tmp.path().join("connected");
    let (site, root) = (tmp.path().join("site"), repo.root_v1.clone());
    let export = |name: &str, extra: &[&str]| {
        relay_once(&[&origin.base], &root, &connected).unwrap();
        let bundle = tmp.path().join(name);
        let mut args = vec!["relay", "export", "--cache", connected.to_str().unwrap()];
        args.extend_from_slice(&["--out", bundle.to_str().unwrap()]);
        args.extend_from_slice(extra);
        ok(&args);
        let import = [
            "relay",
            "import",
            "--cache",
            site.to_str().unwrap(),
            "--trusted-root",
            root.to_str().unwrap(),
            bundle.to_str().unwrap(),
        ];
        (std::fs::metadata(&bundle).unwrap().len(), ok(&import))
    };
    export("full.tar", &[]);

    let v2 = daily(&v1, 1);
    add_pattern(&v2, "18.601.00");
    let (size, out) = export("deltas.tar", &["--deltas"]);
    assert!(out.contains("1 rebuilt from deltas"), "{out}");
    assert!(size < 64 << 10, "a bundle of deltas of {size} bytes");
    let relay = relay_offline(&root, &site);
    let (md, dl) = (tmp.path().join("md"), tmp.path().join("dl"));
    let target = "content/antimalware.pattern/18.601.00/pattern.bin";
    assert_eq!(
        client_download(&md, &root, &relay.base, target, &dl).unwrap(),
        v2
    );

    // A site that never imported the previous bundle: told which files it lacks, and why.
    let fresh = tmp.path().join("fresh");
    let out = run(&[
        "relay",
        "import",
        "--cache",
        fresh.to_str().unwrap(),
        "--trusted-root",
        root.to_str().unwrap(),
        tmp.path().join("deltas.tar").to_str().unwrap(),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("0 rebuilt from deltas"), "{stdout}");
    assert!(
        stderr.contains(&format!("{target}: not in the bundle and not rebuilt (no delta to {target} starts from a version this host holds")),
        "{stderr}"
    );
}
