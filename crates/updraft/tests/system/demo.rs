//! The README's first command as a system test: `updraft demo` starts the origin, two relays, the
//! manager and five agents as real processes, publishes a pattern and a patch, and must end with
//! every agent up to date, the eligible ones patched and the too-old one "not applicable" with its
//! reason; it leaves no process and no directory behind.
use crate::common::*;

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

#[test]
fn ctrl_c_stops_every_process_and_removes_the_directory() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(bin())
        .args(["demo", "--keep-running"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut dir = None;
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.strip_prefix("1. publisher: repository in ") {
            dir = Some(
                std::path::PathBuf::from(rest.split_whitespace().next().unwrap())
                    .parent()
                    .unwrap()
                    .to_path_buf(),
            );
        }
        if line.contains("Ctrl-C stops it all") {
            break;
        }
        line.clear();
    }
    let dir = dir.expect("the demo printed its directory");
    assert!(dir.exists());
    // Ctrl-C (SIGINT) to the demo process.
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!dir.exists(), "{} removed", dir.display());
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.lines().any(|l| l.contains(dir.to_str().unwrap())),
        "every process the demo started is gone"
    );
}
