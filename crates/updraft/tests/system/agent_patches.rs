//! Patches: applicable only when the current build satisfies `requires_build` ("not applicable"
//! recorded once), preflight failures recorded and retried, files swapped with a backup, the
//! build advanced, restart failures rolled back, re-publication harmless, tar and tar.zst.
use crate::common::*;

fn outcomes(h: &[serde_json::Value]) -> Vec<String> {
    h.iter()
        .map(|e| {
            format!(
                "{} {}",
                e["patch_id"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn applies_once_records_history_and_is_idempotent() {
    let bed = AgentBed::new();
    let mut o = bed.opts();
    let restarts = bed.path("restarts");
    o.restart = Some(format!("echo restarted >> {}", restarts.display()));
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar",
        &[
            ("bin/scanner", b"scanner 9.5.1519\n"),
            ("lib/new.so", b"lib"),
        ],
    );
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["patches"][0], serde_json::json!(["scanner", "CP-1519"]));
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1519\n"
    );
    assert_eq!(std::fs::read(bed.path("opt/lib/new.so")).unwrap(), b"lib");
    assert_eq!(
        std::fs::read(bed.path("opt/scanner.conf")).unwrap(),
        b"conf\n",
        "untouched files stay"
    );
    assert_eq!(
        std::fs::read_to_string(&restarts).unwrap().lines().count(),
        1
    );
    let st = bed.status(&cfg);
    assert_eq!(st["products"]["scanner"], "9.5.1519");
    // Again, and published again in a new version with the same id: success, no change.
    bed.once(&cfg).unwrap();
    bed.publish_patch(
        "CP-1519",
        "9.5.1519-2",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519b.tar",
        &[("bin/scanner", b"other bytes\n")],
    );
    let r = bed.once(&cfg).unwrap();
    assert!(r["patches"].as_array().unwrap().is_empty());
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1519\n"
    );
    assert_eq!(
        std::fs::read_to_string(&restarts).unwrap().lines().count(),
        1
    );
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1519 applied"]);
    assert_eq!(
        (h[0]["from_build"].as_str(), h[0]["to_build"].as_str()),
        (Some("9.5.1514"), Some("9.5.1519"))
    );
    // The table form names it too.
    assert!(ok(&["agent", "history", "--config", cfg.to_str().unwrap()]).contains("CP-1519"));
}

#[test]
fn not_applicable_is_recorded_once_with_its_reason() {
    let bed = AgentBed::new();
    let mut o = bed.opts();
    o.build = "9.5.1200".into();
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp.tar",
        &[("bin/scanner", b"x")],
    );
    bed.once(&cfg).unwrap();
    bed.once(&cfg).unwrap();
    bed.repo.add(
        "antimalware.pattern",
        "18.900.00",
        "pattern",
        b"new pattern",
    );
    bed.repo.publish();
    bed.once(&cfg).unwrap();
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1519 not applicable"]);
    assert_eq!(
        h[0]["message"],
        "not applicable: build 9.5.1200, requires >=9.5.1514"
    );
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n"
    );
}

#[test]
fn preflight_failure_is_recorded_and_retried_next_cycle() {
    let bed = AgentBed::new();
    let mut o = bed.opts();
    let running = bed.path("service-running");
    o.preflight = vec![format!(
        "test -e {} || {{ echo 'scanner service is stopped'; exit 1; }}",
        running.display()
    )];
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1520",
        "9.5.1520",
        ">=9.5.1514,<9.6",
        "9.5.1520",
        "cp.tar.zst",
        &[("bin/scanner", b"scanner 9.5.1520\n")],
    );
    bed.once(&cfg).unwrap();
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n",
        "nothing changed"
    );
    std::fs::write(&running, b"").unwrap();
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["patches"][0], serde_json::json!(["scanner", "CP-1520"]));
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1520\n",
        "tar.zst applied"
    );
    let h = bed.history(&cfg);
    assert_eq!(
        outcomes(&h),
        ["CP-1520 preflight failed", "CP-1520 applied"]
    );
    assert!(h[0]["message"]
        .as_str()
        .unwrap()
        .contains("scanner service is stopped"));
}

#[test]
fn restart_failure_restores_the_backup_and_records_it() {
    let bed = AgentBed::new();
    let mut o = bed.opts();
    o.restart = Some("echo 'port 8443 in use' >&2; exit 1".into());
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1521",
        "9.5.1521",
        "9.5.1514",
        "9.5.1521",
        "cp.tar",
        &[("bin/scanner", b"broken\n"), ("bin/added", b"new")],
    );
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n"
    );
    assert!(!bed.path("opt/bin/added").exists());
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1521 failed"]);
    assert!(h[0]["message"]
        .as_str()
        .unwrap()
        .contains("port 8443 in use"));
}

#[test]
fn a_patch_archive_escaping_the_product_is_refused() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    // A tar member named ../evil (written raw: the tar crate refuses to create such names).
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..7].copy_from_slice(b"../evil");
    h.set_cksum();
    tar.append(&h, &b"evil"[..]).unwrap();
    let file = bed.path("evil.tar");
    std::fs::write(&file, tar.into_inner().unwrap()).unwrap();
    let d = bed.repo.dir.to_str().unwrap();
    ok(&[
        "repo",
        "add",
        d,
        file.to_str().unwrap(),
        "--component",
        "scanner",
        "--version",
        "9.5.1600",
        "--kind",
        "patch",
        "--product",
        "scanner",
        "--requires-build",
        "9.5",
        "--build",
        "9.5.1600",
        "--patch-id",
        "CP-EVIL",
    ]);
    bed.repo.publish();
    bed.once(&cfg).unwrap();
    assert!(!bed.path("evil").exists());
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-EVIL failed"]);
    assert!(h[0]["message"]
        .as_str()
        .unwrap()
        .contains("not a relative path"));
}
