//! A real consumer end to end: a ClamAV hash signature database published as
//! `antimalware.pattern` travels `updraft serve` → `updraft relay` → `updraft agent --once` into a
//! directory that `clamscan -d DIR` reads. ClamAV comes from Debian (scripts/setup-system.sh).
use crate::common::*;
use std::path::Path;
use std::process::Command;

fn md5(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `clamscan --no-summary -d DB FILE`: (detected, output).
fn clamscan(db: &Path, file: &Path) -> (bool, String) {
    let out = Command::new("clamscan")
        .args(["--no-summary", "-d"])
        .arg(db)
        .arg(file)
        .output()
        .expect("clamscan is installed by scripts/setup-system.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code() == Some(1) && text.contains("FOUND"), text)
}

#[test]
fn clamscan_detects_what_the_agent_installed() {
    let bed = AgentBed::new();
    let sample = bed.path("sample.bin");
    let sample2 = bed.path("sample2.bin");
    std::fs::write(
        &sample,
        b"updraft test sample one: not a virus, detected by hash",
    )
    .unwrap();
    std::fs::write(&sample2, b"updraft test sample two: a different file").unwrap();
    let hdb = |file: &Path, name: &str| {
        format!(
            "{}:{}:{name}\n",
            md5(file),
            std::fs::metadata(file).unwrap().len()
        )
    };

    let publish = |version: &str, db: String| {
        let f = bed.path("updraft.hdb");
        std::fs::write(&f, db).unwrap();
        let d = bed.repo.dir.to_str().unwrap();
        ok(&[
            "repo",
            "add",
            d,
            f.to_str().unwrap(),
            "--component",
            "antimalware.pattern",
            "--version",
            version,
            "--kind",
            "pattern",
        ]);
        bed.repo.publish();
    };
    // Newer than the 18.523.00 pattern the test repository starts with.
    publish("19.0", hdb(&sample, "Updraft.Test.SampleOne"));

    // origin -> relay (daemon) -> agent
    let (r, c) = (
        bed.repo.root_v1.to_str().unwrap().to_string(),
        bed.path("relay-cache"),
    );
    let relay = Server::spawn(
        &[
            "relay",
            "--upstream",
            &bed.origin.base,
            "--trusted-root",
            &r,
            "--cache",
            c.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1",
        ],
        &[],
    );
    let ts = |d: &Path| -> u64 {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("metadata/timestamp.json")).unwrap())
                .unwrap();
        v["signed"]["version"].as_u64().unwrap()
    };
    let t1 = ts(&bed.repo.dir);
    wait_status(&relay.base, "relay synced", |v| {
        v["trusted_versions"]["timestamp"].as_u64() == Some(t1)
    });
    let mut o = bed.opts();
    o.relays = vec![relay.base.clone()];
    let cfg = bed.config(&o);
    let db = bed.path("av");
    std::fs::create_dir_all(&db).unwrap();

    // Before the update ClamAV has no signature for the sample.
    let (found, text) = clamscan(&db, &sample);
    assert!(!found, "{text}");

    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["source"], relay.base.as_str());
    let (found, text) = clamscan(&db, &sample);
    assert!(
        found && text.contains("Updraft.Test.SampleOne"),
        "{text} {r:#}"
    );

    // A new version with another signature: the first sample is clean, the second detected.
    publish("19.1", hdb(&sample2, "Updraft.Test.SampleTwo"));
    let t2 = ts(&bed.repo.dir);
    wait_status(&relay.base, "relay follows", |v| {
        v["trusted_versions"]["timestamp"].as_u64() == Some(t2)
    });
    let r = bed.once(&cfg).unwrap();
    assert_eq!(
        r["installed"][0],
        serde_json::json!(["antimalware.pattern", "19.1"])
    );
    let (found, text) = clamscan(&db, &sample);
    assert!(!found, "{text}");
    let (found, text) = clamscan(&db, &sample2);
    assert!(found && text.contains("Updraft.Test.SampleTwo"), "{text}");
}
