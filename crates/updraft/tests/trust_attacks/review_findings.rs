//! Independent review (wt-review) of the issue-9 fixes, against the real `updraft agent`.
//! Tests marked FAILS TODAY reproduce findings.

use crate::common::*;

/// FAILS TODAY. A product directory holding a directory symlink (`lib -> <outside>`, as a
/// product's packaging may ship, or as the product's unprivileged service user may plant in a
/// directory it owns): a patch member `lib/evil.so` is written *through* the symlink, outside
/// `install_dir`, by the (root) agent. `apply_patch` joins member paths onto `install_dir` and
/// `place_keeping_mode` / `create_dir_all` / `is_file` all follow symlinks in the parent path.
#[test]
fn a_patch_never_writes_through_a_symlink_in_the_product_dir() {
    let bed = AgentBed::new();
    let outside = bed.path("outside-etc");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("passwd"), b"root:x:0:0\n").unwrap();
    std::os::unix::fs::symlink(&outside, bed.path("opt/lib")).unwrap();
    let cfg = bed.config(&bed.opts());
    bed.publish_patch(
        "CP-1519",
        "9.5.1519",
        ">=9.5.1514",
        "9.5.1519",
        "cp1519.tar",
        &[("lib/passwd", b"evil::0:0\n"), ("lib/new.so", b"new")],
    );
    let r = bed.once(&cfg);
    eprintln!("{r:?}");
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
}
