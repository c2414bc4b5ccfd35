//! Patches must never escape or break the product: a signed patch whose id is a path, whose
//! members carry modes that break or widen the product's files, or whose archive decompresses
//! without bound is refused (or tamed) by the real `updraft agent`, and the outcome is recorded
//! in the hotfix history. A symlink planted in the product's directory (by the product's own
//! unprivileged service user, say) is never followed by the (root) agent: not to write a member,
//! not to back one up, not to remove one on rollback or recovery. Hostile patches that `updraft repo add` refuses to publish are signed
//! with the repository engine directly, as a compromised or careless publisher could.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn set_mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// A tar of `(path, mode, content)` members.
fn tar_of(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (rel, m, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*m);
        h.set_cksum();
        tar.append_data(&mut h, rel, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

/// Publish `bytes` as patch `id` (version and resulting build `version`) with `updraft repo`.
fn publish_archive(bed: &AgentBed, id: &str, version: &str, name: &str, bytes: &[u8]) {
    let file = bed.path(name);
    std::fs::write(&file, bytes).unwrap();
    ok(&[
        "repo",
        "add",
        bed.repo.dir.to_str().unwrap(),
        file.to_str().unwrap(),
        "--component",
        "scanner",
        "--version",
        version,
        "--kind",
        "patch",
        "--product",
        "scanner",
        "--requires-build",
        ">=9.5.1514",
        "--build",
        version,
        "--patch-id",
        id,
    ]);
    bed.repo.publish();
}

/// Every path under `dir` with its length and a hash of its content (files) or `None`
/// (directories), except `skip`.
fn tree(dir: &Path, skip: &Path) -> Vec<(String, Option<(usize, u64)>)> {
    use std::hash::{Hash, Hasher};
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p == skip {
                continue;
            }
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                out.push((name, None));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                out.push((name, Some((bytes.len(), h.finish()))));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_patch_id_naming_a_path_is_refused_and_nothing_outside_state_dir_changes() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    let archive = tar_of(&[("bin/scanner", 0o755, b"scanner 9.5.1600\n")]);

    // The publisher refuses such an id.
    let file = bed.path("cp.tar");
    std::fs::write(&file, &archive).unwrap();
    let err = fails(&[
        "repo",
        "add",
        bed.repo.dir.to_str().unwrap(),
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
        ">=9.5.1514",
        "--build",
        "9.5.1600",
        "--patch-id",
        "../../../escaped",
    ]);
    assert!(
        err.contains("patch id \"../../../escaped\" is not a name"),
        "{err}"
    );

    // A publisher signing it anyway (the engine does not judge `custom`): state_dir/patches/
    // ../../victim is the test's own directory, where an agent that joins the id onto a path
    // writes `victim.archive`, and removes `victim.stage` and `victim.backup` wholesale.
    let hostile = "../../victim";
    let info = model::ContentInfo {
        kind: model::Kind::Patch,
        component: "scanner".into(),
        version: "9.5.1600".into(),
        product: Some("scanner".into()),
        requires_build: Some(">=9.5.1514".into()),
        build: Some("9.5.1600".into()),
        patch_id: Some(hostile.into()),
        platforms: vec![],
        urgent: false,
    };
    let mut repo = tuf::repo::Repository::open(&bed.repo.dir).unwrap();
    repo.add_target_bytes(
        "targets",
        "content/scanner/9.5.1600/cp.tar",
        &archive,
        Some(info.to_custom()),
    )
    .unwrap();
    repo.publish().unwrap();
    // A well-named patch published beside it still applies.
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar",
        &[("lib/fix.so", b"fix")],
    );
    for dir in ["victim.stage", "victim.backup"] {
        std::fs::create_dir_all(bed.path(dir)).unwrap();
        std::fs::write(bed.path(dir).join("keep"), b"precious").unwrap();
    }
    let state = bed.path("state");
    let before = tree(bed.tmp.path(), &state);

    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["patches"], serde_json::json!([["scanner", "CP-1519"]]));
    bed.once(&cfg).unwrap();

    assert_eq!(
        tree(bed.tmp.path(), &state)
            .into_iter()
            .filter(|(p, _)| !p.starts_with("opt/lib") && !p.starts_with("av"))
            .collect::<Vec<_>>(),
        before,
        "nothing outside state_dir changed but the module's content and the well-named patch"
    );
    assert_eq!(std::fs::read(bed.path("opt/lib/fix.so")).unwrap(), b"fix");
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n"
    );
    let h = bed.history(&cfg);
    let mut got = outcomes(&h);
    got.sort();
    assert_eq!(got, ["../../victim refused", "CP-1519 applied"], "{h:#?}");
    let refused = h.iter().find(|e| e["outcome"] == "refused").unwrap();
    let msg = refused["message"].as_str().unwrap();
    assert!(
        msg.contains("content/scanner/9.5.1600/cp.tar")
            && msg.contains("patch id \"../../victim\" is not a name"),
        "{msg}"
    );
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1519");
}

#[test]
fn a_patched_executable_keeps_its_mode_and_restart_runs_it() {
    let bed = AgentBed::new();
    let scanner = bed.path("opt/bin/scanner");
    std::fs::write(&scanner, "#!/bin/sh\necho scanner 9.5.1514\n").unwrap();
    set_mode(&scanner, 0o755);
    let ran = bed.path("restart-output");
    let mut o = bed.opts();
    o.restart = Some(format!("{} > {}", scanner.display(), ran.display()));
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar.zst",
        &[("bin/scanner", b"#!/bin/sh\necho scanner 9.5.1519\n")],
    );
    let r = bed.once(&cfg).unwrap();
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1519 applied"], "{h:#?}");
    assert_eq!(r["patches"], serde_json::json!([["scanner", "CP-1519"]]));
    assert_eq!(mode(&scanner), 0o755);
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "scanner 9.5.1519\n");
    // Files the patch did not touch keep theirs.
    assert_eq!(mode(&bed.path("opt/scanner.conf")), 0o644);
}

#[test]
fn a_failed_restart_restores_the_original_file_and_mode_exactly() {
    let bed = AgentBed::new();
    let scanner = bed.path("opt/bin/scanner");
    let original = "#!/bin/sh\necho scanner 9.5.1514\n";
    std::fs::write(&scanner, original).unwrap();
    set_mode(&scanner, 0o750);
    let conf = bed.path("opt/scanner.conf");
    set_mode(&conf, 0o600);
    let mut o = bed.opts();
    o.restart = Some(scanner.display().to_string());
    let cfg = bed.config(&o);
    publish_archive(
        &bed,
        "CP-1521",
        "9.5.1521",
        "cp1521.tar",
        &tar_of(&[
            (
                "bin/scanner",
                0o755,
                b"#!/bin/sh\necho 'scanner 9.5.1521 cannot start' >&2\nexit 3\n",
            ),
            ("scanner.conf", 0o644, b"new conf\n"),
        ]),
    );
    bed.once(&cfg).unwrap();
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1521 failed"], "{h:#?}");
    let msg = h[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("cannot start") && !msg.contains("restart after restoring also failed"),
        "the original runs again after the restore: {msg}"
    );
    assert_eq!(std::fs::read_to_string(&scanner).unwrap(), original);
    assert_eq!(mode(&scanner), 0o750);
    assert_eq!(std::fs::read(&conf).unwrap(), b"conf\n");
    assert_eq!(mode(&conf), 0o600);
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
}

#[test]
fn setuid_and_world_writable_modes_in_a_patch_archive_are_masked() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    publish_archive(
        &bed,
        "CP-1530",
        "9.5.1530",
        "cp1530.tar",
        &tar_of(&[
            ("bin/suid", 0o4777, b"#!/bin/sh\n"),
            ("bin/sgid", 0o2775, b"#!/bin/sh\n"),
            ("bin/sticky", 0o1777, b"#!/bin/sh\n"),
            ("etc/shared.conf", 0o666, b"shared\n"),
            ("etc/secret.conf", 0o640, b"secret\n"),
        ]),
    );
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["patches"], serde_json::json!([["scanner", "CP-1530"]]));
    for (rel, want) in [
        ("opt/bin/suid", 0o755),
        ("opt/bin/sgid", 0o755),
        ("opt/bin/sticky", 0o755),
        ("opt/etc/shared.conf", 0o644),
        ("opt/etc/secret.conf", 0o640),
    ] {
        assert_eq!(
            mode(&bed.path(rel)),
            want,
            "{rel}: {:o}",
            mode(&bed.path(rel))
        );
    }
}

#[test]
fn a_zstd_bomb_patch_is_refused_while_unpacking() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    bed.edit_config(&cfg, |c| c.patch_limits.max_unpacked_bytes = 1 << 20);
    // 16 MiB of zeros in a few kilobytes.
    let zeros = vec![0u8; 16 << 20];
    let tar = tar_of(&[("bin/scanner", 0o755, &zeros)]);
    let bomb = ruzstd::encoding::compress_to_vec(
        tar.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    publish_archive(&bed, "CP-BOMB", "9.5.1540", "bomb.tar.zst", &bomb);
    // Within the limit, a patch still applies.
    let small = tar_of(&[("lib/fix.so", 0o644, &[1u8; 4096])]);
    publish_archive(&bed, "CP-SMALL", "9.5.1550", "small.tar", &small);

    bed.once(&cfg).unwrap();
    let h = bed.history(&cfg);
    assert_eq!(
        outcomes(&h),
        ["CP-BOMB failed", "CP-SMALL applied"],
        "{h:#?}"
    );
    let msg = h[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("bin/scanner") && msg.contains("max_unpacked_bytes = 1048576"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n"
    );
    let patches = bed.path("state/patches");
    assert!(
        !patches.join("CP-BOMB.stage").exists(),
        "staging is cleaned up"
    );
    // Nothing the agent wrote comes near the unpacked size.
    for (p, content) in tree(&bed.path("state"), Path::new("")) {
        assert!(
            content.is_none_or(|(len, _)| len <= 1 << 20),
            "{p} is larger than the bound"
        );
    }
    // Recorded once, not every cycle.
    bed.once(&cfg).unwrap();
    assert_eq!(bed.history(&cfg).len(), 2);
}

#[test]
fn a_patch_with_too_many_members_is_refused() {
    let bed = AgentBed::new();
    let cfg = bed.config(&bed.opts());
    bed.edit_config(&cfg, |c| c.patch_limits.max_members = 10);
    let names: Vec<String> = (0..50).map(|i| format!("lib/f{i}")).collect();
    let members: Vec<(&str, u32, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), 0o644, &b"x"[..]))
        .collect();
    publish_archive(&bed, "CP-MANY", "9.5.1560", "many.tar", &tar_of(&members));
    bed.once(&cfg).unwrap();
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-MANY failed"], "{h:#?}");
    let msg = h[0]["message"].as_str().unwrap();
    assert!(msg.contains("max_members = 10"), "{msg}");
    assert!(!bed.path("opt/lib").exists(), "nothing was swapped in");
    assert!(!bed.path("state/patches/CP-MANY.stage").exists());
}

/// Is `p` a symlink (not followed)?
fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// A directory outside the product holding `file` with `content`.
fn outside_dir(bed: &AgentBed, dir: &str, file: &str, content: &[u8]) -> std::path::PathBuf {
    let d = bed.path(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(file), content).unwrap();
    d
}

/// A product directory holding a directory symlink (`lib -> <outside>`, as the product's
/// unprivileged service user may plant in a directory it owns): the patch members `lib/passwd`
/// and `lib/new.so` are never written through it; the patch is refused before anything changes.
#[test]
fn a_patch_never_writes_through_a_symlink_in_the_product_dir() {
    let bed = AgentBed::new();
    let outside = outside_dir(&bed, "outside-etc", "passwd", b"root:x:0:0\n");
    std::os::unix::fs::symlink(&outside, bed.path("opt/lib")).unwrap();
    let cfg = bed.config(&bed.opts());
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar",
        &[
            ("bin/scanner", b"scanner 9.5.1519\n"),
            ("lib/passwd", b"evil::0:0\n"),
            ("lib/new.so", b"new"),
        ],
    );
    let r = bed.once(&cfg).unwrap();
    assert_eq!(r["patches"], serde_json::json!([]));
    assert_eq!(
        std::fs::read(outside.join("passwd")).unwrap(),
        b"root:x:0:0\n",
        "the patch replaced a file outside the product directory through lib -> {}",
        outside.display()
    );
    assert!(
        !outside.join("new.so").exists(),
        "the patch created a file outside the product directory"
    );
    assert_eq!(
        std::fs::read(bed.path("opt/bin/scanner")).unwrap(),
        b"scanner 9.5.1514\n",
        "nothing changed, not even the members that could be written"
    );
    assert!(is_link(&bed.path("opt/lib")));
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1519 failed"], "{h:#?}");
    let msg = h[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("refused, nothing changed")
            && msg.contains("lib/passwd")
            && msg.contains("lib is a symlink (to "),
        "{msg}"
    );
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
    // Refused again next cycle, recorded once.
    bed.once(&cfg).unwrap();
    assert_eq!(bed.history(&cfg).len(), 1);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

/// A member whose last element is a symlink (`bin/scanner -> ../../outside/file`): its target is
/// neither backed up nor replaced; the patch is refused and the link left as it is.
#[test]
fn a_patch_never_writes_through_a_symlink_as_the_member_itself() {
    let bed = AgentBed::new();
    let outside = outside_dir(&bed, "outside", "file", b"precious\n");
    let scanner = bed.path("opt/bin/scanner");
    std::fs::remove_file(&scanner).unwrap();
    std::os::unix::fs::symlink("../../outside/file", &scanner).unwrap();
    assert_eq!(std::fs::read(&scanner).unwrap(), b"precious\n");
    let cfg = bed.config(&bed.opts());
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar",
        &[("bin/scanner", b"evil\n")],
    );
    bed.once(&cfg).unwrap();
    assert_eq!(std::fs::read(outside.join("file")).unwrap(), b"precious\n");
    assert!(is_link(&scanner), "the link was not replaced either");
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1519 failed"], "{h:#?}");
    let msg = h[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("bin/scanner is a symlink (to ../../outside/file)"),
        "{msg}"
    );
    assert!(
        !bed.path("state/patches/CP-1519.backup/bin/scanner")
            .exists(),
        "the link's target was not backed up"
    );
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
}

/// Symlinks planted after the patch was swapped in (here by the failing `restart` command
/// itself): the rollback neither restores `bin/scanner` through `bin -> <outside>` nor removes
/// `lib/new.so` through `lib -> <outside>`; it says what it left as it is.
#[test]
fn a_rollback_never_writes_or_deletes_through_a_symlink_planted_after_the_backup() {
    let bed = AgentBed::new();
    let out_bin = outside_dir(&bed, "outside-bin", "scanner", b"outside scanner\n");
    let out_lib = outside_dir(&bed, "outside-lib", "new.so", b"outside lib\n");
    let opt = bed.path("opt");
    let plant = format!(
        "cd {opt} && if [ ! -L bin ]; then mv bin bin.moved && ln -s {ob} bin && mv lib lib.moved && ln -s {ol} lib; fi; exit 1",
        opt = opt.display(),
        ob = out_bin.display(),
        ol = out_lib.display()
    );
    let mut o = bed.opts();
    o.restart = Some(plant);
    let cfg = bed.config(&o);
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar",
        &[
            ("bin/scanner", b"scanner 9.5.1519\n"),
            ("lib/new.so", b"new"),
        ],
    );
    bed.once(&cfg).unwrap();
    assert!(is_link(&bed.path("opt/bin")) && is_link(&bed.path("opt/lib")));
    assert_eq!(
        std::fs::read(out_bin.join("scanner")).unwrap(),
        b"outside scanner\n",
        "the rollback restored the backup through bin -> {}",
        out_bin.display()
    );
    assert_eq!(
        std::fs::read(out_lib.join("new.so")).unwrap(),
        b"outside lib\n",
        "the rollback removed a file through lib -> {}",
        out_lib.display()
    );
    let h = bed.history(&cfg);
    assert_eq!(outcomes(&h), ["CP-1519 failed"], "{h:#?}");
    let msg = h[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("restart failed, backup restored")
            && msg.contains("not restored")
            && msg.contains("bin is a symlink")
            && msg.contains("lib is a symlink"),
        "{msg}"
    );
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
    assert!(
        !bed.path("state/journal.json").exists(),
        "the rollback finished"
    );
}

/// Recovery after a crash rolls a patch back through the same mechanism: a symlink planted
/// while the agent was down is not followed, recovery still completes, and the retried patch
/// is refused.
#[test]
fn recovery_after_a_crash_never_deletes_through_a_symlink_planted_meanwhile() {
    let bed = AgentBed::new();
    let out_lib = outside_dir(&bed, "outside-lib", "new.so", b"outside lib\n");
    let cfg = bed.config(&bed.opts());
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar",
        &[("lib/new.so", b"new")],
    );
    assert!(bed
        .once_env(&cfg, &[("UPDRAFT_FAULT", "patch-before-restart")])
        .is_err());
    assert_eq!(std::fs::read(bed.path("opt/lib/new.so")).unwrap(), b"new");
    std::fs::rename(bed.path("opt/lib"), bed.path("opt/lib.moved")).unwrap();
    std::os::unix::fs::symlink(&out_lib, bed.path("opt/lib")).unwrap();
    let r = bed.once(&cfg).unwrap();
    assert!(
        r["recovered"]
            .as_str()
            .is_some_and(|s| s.contains("rolled back")),
        "{r:#}"
    );
    assert_eq!(
        std::fs::read(out_lib.join("new.so")).unwrap(),
        b"outside lib\n"
    );
    let h = bed.history(&cfg);
    assert_eq!(
        outcomes(&h),
        ["CP-1519 rolled back", "CP-1519 failed"],
        "{h:#?}"
    );
    let msg = h[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("not restored") && msg.contains("lib is a symlink"),
        "{msg}"
    );
    assert_eq!(bed.status(&cfg)["products"]["scanner"], "9.5.1514");
}
