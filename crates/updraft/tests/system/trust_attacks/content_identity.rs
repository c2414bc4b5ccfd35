//! Content identity is bound to the path (issue 9.3): the component and version an agent acts on
//! are those of `content/<component>/<version>/<file>`; a target whose `custom.updraft` says
//! otherwise is ignored and reported, a patch cannot name another product than its path, and
//! the publisher refuses to write such targets.

use serde_json::json;

use crate::common::*;

/// A repository written by another tool: `ips-team` (delegated `content/ips.rules/*/*`) signs
/// targets in its scope whose `custom.updraft` claims something else.
fn sign_as_ips_team(repo: &Repo, items: &[(&str, serde_json::Value, &[u8])]) {
    repo.delegate("ips-team", "content/ips.rules/*/*");
    for (path, custom, body) in items {
        repo.sign_as("ips-team", path, json!({ "updraft": custom }), body);
    }
}

#[test]
fn a_target_whose_custom_names_another_component_is_ignored_and_reported() {
    let bed = AgentBed::new();
    let lie = json!({"kind": "pattern", "component": "antimalware.pattern", "version": "77.0.0"});
    sign_as_ips_team(
        &bed.repo,
        &[("content/ips.rules/2.0.0/p.dat", lie, b"evil pattern")],
    );
    let cfg = bed.config(&bed.opts());
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    assert!(!bed.path("av/p.dat").exists());
    let st = bed.status(&cfg);
    assert_eq!(
        st["modules"][0]["components"]["antimalware.pattern"],
        "18.523.00"
    );
    let ignored = st["ignored"].to_string();
    assert!(
        ignored.contains("content/ips.rules/2.0.0/p.dat") && ignored.contains("component"),
        "{st:#}"
    );
}

#[test]
fn a_patch_signed_under_another_components_path_cannot_patch_the_product() {
    let bed = AgentBed::new();
    let patch = json!({"kind": "patch", "component": "scanner", "version": "9.9.0",
        "product": "scanner", "requires_build": ">=9.5", "build": "9.9.0", "patch_id": "CP-9"});
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, "bin/scanner", &b"evil"[..])
        .unwrap();
    let archive = tar.into_inner().unwrap();
    sign_as_ips_team(
        &bed.repo,
        &[("content/ips.rules/9.9.0/cp.tar", patch, &archive)],
    );
    let cfg = bed.config(&bed.opts());
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n"
    );
    let history = bed.history(&cfg);
    let refused = history
        .iter()
        .find(|e| e["outcome"] == "refused")
        .unwrap_or_else(|| panic!("no refusal recorded: {history:#?}"));
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("content/ips.rules/9.9.0/cp.tar"));
    assert!(
        !history.iter().any(|e| e["outcome"] == "applied"),
        "{history:#?}"
    );
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
}

#[test]
fn the_publisher_refuses_a_patch_for_another_product_than_its_component() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    let file = tmp.path().join("cp.tar");
    std::fs::write(&file, b"x").unwrap();
    let (d, f) = (repo.dir.to_str().unwrap(), file.to_str().unwrap());
    let err = fails(&[
        "repo",
        "add",
        d,
        f,
        "--component",
        "ips.rules",
        "--version",
        "9.9.0",
        "--kind",
        "patch",
        "--product",
        "scanner",
        "--requires-build",
        "9.5",
        "--build",
        "9.9.0",
        "--patch-id",
        "CP-9",
    ]);
    assert!(
        err.contains("product") && err.contains("component"),
        "{err}"
    );
    assert!(!repo.dir.join("staged.json").exists());
}

/// Regression (review of issue 9): two components of one module share its `install_dir` (README: antimalware
/// module = antimalware.pattern + antimalware.engine). A publisher scoped to
/// `content/antimalware.engine/*/*` signs a file named like the pattern's file: the agent
/// installs it over the pattern component's file, and installed.json still says the pattern
/// is 18.523.00. (The file name, like the component, is part of the path; only the component is
/// bound.) A later engine version without that file then *deletes* the pattern's file.
#[test]
fn a_component_cannot_overwrite_another_components_file_in_a_shared_module_dir() {
    let bed = AgentBed::new();
    bed.repo
        .delegate("engine-team", "content/antimalware.engine/*/*");
    let custom = json!({"updraft": {"kind": "engine", "component": "antimalware.engine", "version": "1.0.0"}});
    bed.repo.sign_as(
        "engine-team",
        "content/antimalware.engine/1.0.0/antimalware.pattern.dat",
        custom,
        b"engine team's bytes",
    );
    let cfg = bed.config(&bed.opts());
    bed.edit_config(&cfg, |c| {
        c.modules[0].components.push("antimalware.engine".into());
    });
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00",
        "the engine publisher replaced the pattern component's file"
    );
    let st = bed.status(&cfg);
    assert!(
        st["errors"]
            .to_string()
            .contains("belongs to component antimalware.pattern"),
        "{st:#}"
    );
    assert_eq!(
        st["modules"][0]["components"]["antimalware.pattern"],
        "18.523.00"
    );
}
