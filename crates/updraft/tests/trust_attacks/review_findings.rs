//! Independent review (wt-review) of the issue-9 fixes, against the real `updraft agent`.
//! Tests marked FAILS TODAY reproduce findings.

use serde_json::json;

use crate::common::*;

/// FAILS TODAY. Two components of one module share its `install_dir` (README: antimalware
/// module = antimalware.pattern + antimalware.engine). A publisher scoped to
/// `content/antimalware.engine/*/*` signs a file named like the pattern's file: the agent
/// installs it over the pattern component's file, and installed.json still says the pattern
/// is 18.523.00. (The file name, like the component, is part of the path; only the component is
/// bound.) A later engine version without that file then *deletes* the pattern's file.
#[test]
fn a_component_cannot_overwrite_another_components_file_in_a_shared_module_dir() {
    let bed = AgentBed::new();
    let d = bed.repo.dir.to_str().unwrap();
    ok(&[
        "repo",
        "delegate",
        d,
        "--name",
        "engine-team",
        "--path",
        "content/antimalware.engine/*/*",
    ]);
    bed.repo.publish();
    let mut r = tuf::repo::Repository::open(&bed.repo.dir).unwrap();
    let custom = json!({"updraft": {"kind": "engine", "component": "antimalware.engine", "version": "1.0.0"}});
    r.add_target_bytes(
        "engine-team",
        "content/antimalware.engine/1.0.0/antimalware.pattern.dat",
        b"engine team's bytes",
        Some(custom),
    )
    .unwrap();
    r.publish().unwrap();
    let cfg = bed.config(&bed.opts());
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "components = [\"antimalware.pattern\"]",
        "components = [\"antimalware.pattern\", \"antimalware.engine\"]",
    );
    std::fs::write(&cfg, text).unwrap();
    let rep = bed.once(&cfg).unwrap();
    eprintln!("{rep:#}");
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00",
        "the engine publisher replaced the pattern component's file"
    );
}
