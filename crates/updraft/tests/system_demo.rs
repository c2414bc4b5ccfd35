//! The README's first command as a system test: `updraft demo` starts the origin, two relays, the
//! manager and five agents as real processes, publishes a pattern and a patch, and must end with
//! every agent up to date, the eligible ones patched and the too-old one "not applicable" with its
//! reason; it leaves no process and no directory behind.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

#[test]
fn demo_runs_end_to_end_and_cleans_up() {
    let out = run(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("7. fleet"))
        .collect();
    let agents: Vec<&&str> = table.iter().filter(|l| l.starts_with("agent-")).collect();
    assert_eq!(agents.len(), 5, "{text}");
    for a in &agents {
        assert!(
            a.contains("pattern 18.525.00") && a.contains("antimalware online"),
            "{a}"
        );
    }
    let legacy = agents
        .iter()
        .find(|l| l.starts_with("agent-legacy"))
        .unwrap();
    assert!(
        legacy.contains("not applicable: build 9.5.1200, requires >=9.5.1514"),
        "{legacy}"
    );
    assert_eq!(
        agents
            .iter()
            .filter(|l| l.contains("CP-1519 applied"))
            .count(),
        4
    );
    assert_eq!(table.iter().filter(|l| l.starts_with("relay-")).count(), 2);
    // Nothing left behind.
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("1. publisher: repository in "))
        .unwrap();
    let dir = std::path::Path::new(dir.split_whitespace().next().unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(!dir.exists(), "{} was removed", dir.display());
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines().any(|l| l.contains(dir.to_str().unwrap())),
        "a process of the demo is still running"
    );
}
