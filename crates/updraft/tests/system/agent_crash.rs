//! The agent killed (abort, like SIGKILL) at each point of an install and of a patch, repeatedly:
//! after the restart every component is entirely the old or the new version, the product entirely
//! patched or not, the history consistent, and the next cycle completes.
use crate::common::*;
use std::collections::BTreeMap;

/// The module directory's files and contents.
fn av_files(bed: &AgentBed) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(bed.path("av"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Every file under `dir` (relative path with `/`) and its contents.
fn tree(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn files(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

/// Publish version `v` of the pattern as two files whose contents name the version.
fn publish_version(bed: &AgentBed, v: &str) -> BTreeMap<String, Vec<u8>> {
    let d = bed.repo.dir.to_str().unwrap();
    let mut expected = BTreeMap::new();
    for name in [format!("main-{v}.hdb"), "daily.cvd".to_string()] {
        let body = format!("{name} of {v}").into_bytes();
        let f = bed.path(&name);
        std::fs::write(&f, &body).unwrap();
        ok(&[
            "repo",
            "add",
            d,
            f.to_str().unwrap(),
            "--component",
            "antimalware.pattern",
            "--version",
            v,
            "--kind",
            "pattern",
        ]);
        expected.insert(name, body);
    }
    bed.repo.publish();
    expected
}

#[test]
fn killed_during_installs_the_component_is_never_a_mix() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    let mut current = publish_version(&bed, "19.0");
    bed.once(&cfg).unwrap();
    assert_eq!(av_files(&bed), current);
    for (round, point) in [
        "install-after-stage",
        "install-mid-swap",
        "install-before-clear",
        "install-mid-swap",
        "install-after-stage",
    ]
    .into_iter()
    .enumerate()
    {
        let next = publish_version(&bed, &format!("19.{}", round + 1));
        let err = bed.once_env(&cfg, &[("UPDRAFT_FAULT", point)]).unwrap_err();
        assert!(err.contains("status None"), "{point}: {err}");
        let on_disk = av_files(&bed);
        let journal = bed.path("state/journal.json").exists();
        // Either untouched, or complete, or (mid-swap) recorded in the journal for completion.
        assert!(
            on_disk == current || on_disk == next || journal,
            "{point}: a mix without a journal: {on_disk:?}"
        );
        let r = bed.once(&cfg).unwrap();
        assert!(
            r["recovered"].is_null() || r["recovered"].as_str().unwrap().contains("completed"),
            "{r:#}"
        );
        assert_eq!(
            av_files(&bed),
            next,
            "{point}: after the restart the new version, whole"
        );
        assert!(!bed.path("state/journal.json").exists());
        let st = bed.status(&cfg);
        assert_eq!(
            st["modules"][0]["components"]["antimalware.pattern"],
            format!("19.{}", round + 1)
        );
        current = next;
    }
}

#[test]
fn killed_during_a_patch_the_product_is_restored_and_the_patch_retried() {
    let bed = AgentBed::new();
    let mut o = bed.opts();
    o.restart = Some("true".into());
    let cfg = bed.config(&o);
    let old_scanner = std::fs::read(bed.path("opt/bin/scanner")).unwrap();
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp.tar",
        &[
            ("bin/scanner", b"scanner 9.5.1519\n"),
            ("bin/helper", b"helper\n"),
        ],
    );
    let product = |bed: &AgentBed| {
        (
            std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
            bed.path("opt/bin/helper").exists(),
        )
    };
    for point in [
        "patch-after-backup",
        "patch-mid-swap",
        "patch-before-restart",
        "patch-mid-swap",
    ] {
        // Each run first recovers from the previous crash (rolling back), then crashes again.
        let err = bed.once_env(&cfg, &[("UPDRAFT_FAULT", point)]).unwrap_err();
        assert!(err.contains("status None"), "{point}: {err}");
        let (scanner, helper) = product(&bed);
        let untouched = scanner == old_scanner && !helper;
        let patched = scanner == b"scanner 9.5.1519\n" && helper;
        assert!(
            untouched || patched || bed.path("state/journal.json").exists(),
            "{point}: a mix without a journal"
        );
    }
    // A clean run: recovers from the last crash (rolling back), then applies the patch.
    let r = bed.once(&cfg).unwrap();
    assert!(
        r["recovered"].as_str().unwrap().contains("rolled back"),
        "{r:#}"
    );
    assert_eq!(r["patches"][0], serde_json::json!(["scanner", "CP-1519"]));
    // The product directory holds exactly the patched product: the patch's files, the file
    // it did not touch, and no staging or backup left behind by the crashes.
    assert_eq!(
        tree(&bed.path("opt")),
        files(&[
            ("bin/helper", b"helper\n"),
            ("bin/scanner", b"scanner 9.5.1519\n"),
            ("scanner.conf", b"conf\n"),
        ])
    );
    let h = bed.history(&cfg);
    let outcomes: Vec<&str> = h.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    // Every crash after the backup is one "rolled back"; then exactly one "applied", last.
    assert_eq!(outcomes.last(), Some(&"applied"));
    assert_eq!(outcomes.iter().filter(|o| **o == "applied").count(), 1);
    assert!(
        outcomes[..outcomes.len() - 1]
            .iter()
            .all(|o| *o == "rolled back"),
        "{outcomes:?}"
    );
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1519");
    // The next cycle completes with nothing to do.
    let r = bed.once(&cfg).unwrap();
    assert!(r["patches"].as_array().unwrap().is_empty() && r["recovered"].is_null());
}

#[test]
fn killed_mid_patch_then_restarted_the_product_is_entirely_old_before_retry() {
    let bed = AgentBed::new();
    let mut o = bed.opts();
    let gate = bed.path("preflight-open");
    o.preflight = vec![format!("test -e {}", gate.display())];
    let cfg = bed.config(&o);
    std::fs::write(&gate, b"").unwrap();
    let before = tree(&bed.path("opt"));
    assert_eq!(
        before,
        files(&[
            ("bin/scanner", b"scanner 9.5.1514\n"),
            ("scanner.conf", b"conf\n")
        ])
    );
    bed.publish_patch(
        "CP-1522",
        "9.5.1522",
        ">=9.5.1514",
        "9.5.1522",
        "cp.tar",
        &[("bin/scanner", b"scanner 9.5.1522\n"), ("bin/extra", b"x")],
    );
    bed.once_env(&cfg, &[("UPDRAFT_FAULT", "patch-mid-swap")])
        .unwrap_err();
    // Close the gate: the restart only recovers (rollback) and then waits for the preflight.
    std::fs::remove_file(&gate).unwrap();
    let r = bed.once(&cfg).unwrap();
    assert!(r["recovered"].as_str().unwrap().contains("rolled back"));
    // Exactly the product as it was: no file of the patch, nothing staged, nothing missing.
    assert_eq!(tree(&bed.path("opt")), before);
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
}
