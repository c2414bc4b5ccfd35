//! The agent's ledger of what it recorded: an outcome is recorded once, and recovery resets it
//! so that what happens after a rollback is recorded again.

use model::protocol::Outcome;

use crate::support::{spelled, Bed};

/// What a crash after the first patched member was swapped in leaves behind (the state the
/// `patch-mid-swap` fault point produces): the journal, the backup, a half-patched product.
fn leave_a_crash_mid_patch(bed: &Bed, id: &str) {
    let backup = bed.path(&format!("state/patches/{id}.backup"));
    std::fs::create_dir_all(backup.join("bin")).unwrap();
    std::fs::copy(bed.path("opt/bin/scanner"), backup.join("bin/scanner")).unwrap();
    std::fs::write(
        bed.path("opt/bin/scanner"),
        b"scanner 9.5.1519, half swapped\n",
    )
    .unwrap();
    let journal = agent::state::Journal::Patch {
        patch_id: id.into(),
        product: "scanner".into(),
        install_dir: bed.path("opt"),
        backup_dir: backup,
        replaced: vec!["bin/scanner".into()],
        added: Vec::new(),
        from_build: "9.5.1514".into(),
        to_build: "9.5.1519".into(),
    };
    bed.state().set_journal(&journal).unwrap();
}

/// Regression (issue 10): recovery meant to forget the last recorded outcome of the patch it
/// rolled back, but removed the key `CP-1519` while outcomes are kept under `patch:CP-1519`.
/// So a preflight failure recorded before the crash was not recorded after the rollback: the
/// history's last word on the patch was "rolled back … will be retried" while every retry
/// failed its preflight, and the manager never learnt why the patch was missing.
#[test]
fn after_a_rollback_the_next_preflight_failure_is_recorded_again() {
    let mut bed = Bed::new();
    let ready = bed.path("ready");
    bed.product_extra = format!("preflight = [\"test -f {}\"]", ready.display());
    bed.publish_patch(
        "CP-1519",
        ">=9.5.1514",
        "9.5.1519",
        &[("bin/scanner", b"scanner 9.5.1519\n")],
    );
    let a = bed.agent();
    a.cycle().unwrap();
    let pf = ("CP-1519".to_string(), spelled(Outcome::PreflightFailed));
    assert_eq!(bed.outcomes(), vec![pf.clone()]);
    // Same failure next cycle: recorded once only.
    a.cycle().unwrap();
    assert_eq!(bed.outcomes(), vec![pf.clone()]);

    // The preflight passed once, the agent crashed swapping the patch in; it fails again now.
    leave_a_crash_mid_patch(&bed, "CP-1519");
    let report = a.cycle().unwrap();
    assert!(report.recovered.unwrap().contains("rolled back"));
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n",
        "the backup is restored"
    );
    let rb = ("CP-1519".to_string(), spelled(Outcome::RolledBack));
    assert_eq!(
        bed.outcomes(),
        [pf.clone(), rb, pf],
        "the retry's outcome is recorded"
    );
}

/// An agent upgraded in place finds `products.json` as earlier agents wrote it (one string map
/// `last_outcome` with `patch:{id}` keys) and `status.json` without the plan's digest: it plans
/// again once, and neither records an outcome again nor applies or installs anything again.
#[test]
fn an_upgraded_agent_reads_the_earlier_ledger_and_records_nothing_twice() {
    let mut bed = Bed::new();
    bed.publish_patch(
        "CP-1519",
        ">=9.5.1514",
        "9.5.1519",
        &[("bin/scanner", b"scanner 9.5.1519\n")],
    );
    bed.publish_patch(
        "CP-2000",
        ">=9.6",
        "9.6.0",
        &[("bin/scanner", b"scanner 9.6.0\n")],
    );
    let a = bed.agent();
    a.cycle().unwrap();
    let history = bed.state().history().unwrap();
    assert_eq!(
        bed.outcomes(),
        [
            ("CP-1519".to_string(), spelled(Outcome::Applied)),
            ("CP-2000".to_string(), spelled(Outcome::NotApplicable))
        ]
    );
    // What an earlier agent left: its ledger layout, its status without `applied_plan`.
    let last_outcome: serde_json::Map<String, serde_json::Value> = history
        .iter()
        .map(|e| (format!("patch:{}", e.patch_id), e.message.clone().into()))
        .collect();
    let old = serde_json::json!({"builds": {"scanner": "9.5.1519"},
                                 "applied": {"scanner": ["CP-1519"]},
                                 "last_outcome": last_outcome});
    std::fs::write(bed.path("state/products.json"), old.to_string()).unwrap();
    let status_file = bed.path("state/status.json");
    let mut status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status_file).unwrap()).unwrap();
    assert!(status
        .as_object_mut()
        .unwrap()
        .remove("applied_plan")
        .is_some());
    std::fs::write(&status_file, status.to_string()).unwrap();

    let r = a.cycle().unwrap();
    assert!(r.installed.is_empty() && r.patches.is_empty(), "{r:?}");
    assert_eq!(
        bed.state().history().unwrap(),
        history,
        "nothing recorded again"
    );
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1519\n"
    );
    // Read in the typed form (written so with the next change).
    let ledger = bed.state().ledger().unwrap();
    assert_eq!(ledger.patches["CP-2000"].outcome, Outcome::NotApplicable);
    assert!(ledger.is_applied("scanner", "CP-1519"));
}
