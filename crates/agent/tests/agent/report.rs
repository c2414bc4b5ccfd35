//! The heartbeat: the manager protocol's typed message, built from the state files.

use model::protocol::{ModuleState, Outcome, Role};

use crate::support::{Bed, PATTERN};

#[test]
fn the_heartbeat_reports_builds_components_modules_and_unsent_history() {
    let mut bed = Bed::new();
    bed.publish_patch(
        "CP-1519",
        ">=9.5.1514",
        "9.5.1519",
        &[("bin/scanner", b"new\n")],
    );
    bed.agent().cycle().unwrap();
    let hb = agent::report::heartbeat(&bed.state(), "branch-pc-1".into(), 0, None, b"{}").unwrap();
    assert_eq!(
        (hb.hostname.as_str(), hb.role),
        ("branch-pc-1", Role::Agent)
    );
    assert_eq!(hb.builds["scanner"], "9.5.1519");
    assert_eq!(hb.builds["updraft"], env!("CARGO_PKG_VERSION"));
    assert_eq!(hb.components[PATTERN], "18.523.00");
    assert_eq!(hb.modules[0].status, ModuleState::Online);
    assert_eq!(hb.history.len(), 1);
    assert_eq!(hb.history[0].outcome, Outcome::Applied);
    assert_eq!(hb.upstream.as_deref(), Some(bed.url().as_str()));
    assert_eq!(hb.last_result.as_deref(), Some("ok"));
    // On the wire as the protocol spells it.
    let json = serde_json::to_value(&hb).unwrap();
    assert_eq!(json["role"], "agent");
    assert_eq!(json["modules"][0]["status"], "online");
    assert_eq!(json["history"][0]["outcome"], "applied");
    // Entries the manager has are not sent again.
    let hb = agent::report::heartbeat(&bed.state(), "branch-pc-1".into(), 1, None, b"{}").unwrap();
    assert!(hb.history.is_empty());
}
