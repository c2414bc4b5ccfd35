//! `updraft demo`, steps 6 and 7: a new pattern and a patch spread through the relay tree to
//! every agent (watched in the manager), then the fleet table.

use model::protocol::{Outcome, Role};
use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use manager::fleet::HostView;
use updraft::launch;

use super::{Demo, AGENTS};

impl Demo<'_> {
    /// Every agent reported the first pattern to the manager.
    pub(super) fn wait_for_first_content(&self) -> Result<()> {
        self.wait("every agent has the first content", 45, |hosts| {
            let n = count(hosts.iter(), |h| pattern(h) == Some("18.523.00"));
            (n == AGENTS.len(), format!("{n}/{} agents", AGENTS.len()))
        })
    }

    /// Step 6: pattern 18.525.00 and patch CP-1519 for scanner builds from 9.5.1514.
    pub(super) fn publish_pattern_and_patch(&self) -> Result<()> {
        println!(
            "6. publisher: new pattern 18.525.00 and patch CP-1519 (scanner >= 9.5.1514 -> 9.5.1519)"
        );
        self.add(
            "antimalware.pattern",
            "18.525.00",
            "pattern",
            "main.hdb",
            b"pattern 18.525.00\n",
            &[],
        )?;
        let patch = patch_archive(b"scanner 9.5.1519\n")?;
        let extra = [
            "--product",
            "scanner",
            "--requires-build",
            ">=9.5.1514",
            "--build",
            "9.5.1519",
            "--patch-id",
            "CP-1519",
        ];
        self.add(
            "scanner",
            "9.5.1519",
            "patch",
            "cp-1519.tar",
            &patch,
            &extra,
        )?;
        self.quiet.run(&["repo", "publish", super::s(&self.repo)])?;
        Ok(())
    }

    /// Every agent on the new pattern, the four eligible ones patched, and the too-old one
    /// recorded as "not applicable"; progress printed as it changes.
    pub(super) fn wait_for_the_spread(&self) -> Result<()> {
        let last = RefCell::new(String::new());
        self.wait("the new pattern and the patch spread", 60, |hosts| {
            let agents: Vec<_> = hosts.iter().filter(|h| h.host.role == Role::Agent).collect();
            let updated = count(agents.iter().copied(), |h| pattern(h) == Some("18.525.00"));
            let patched = count(agents.iter().copied(), |h| {
                h.host.builds.get("scanner").map(String::as_str) == Some("9.5.1519")
            });
            let legacy_recorded = self
                .db
                .history(None, Some("CP-1519"))
                .map(|v| v.iter().any(|(_, e)| e.outcome == Outcome::NotApplicable))
                .unwrap_or(false);
            let line = format!(
                "   {updated}/{} agents on pattern 18.525.00, {patched}/4 eligible agents patched, too-old host recorded as not applicable: {}",
                agents.len(),
                if legacy_recorded { "yes" } else { "not yet" }
            );
            if *last.borrow() != line {
                println!("{line}");
                *last.borrow_mut() = line.clone();
            }
            let done = updated == AGENTS.len() && patched == 4 && legacy_recorded;
            (done, line)
        })
    }

    /// Step 7: the fleet table from the manager, and where to look further.
    pub(super) fn show_fleet(&self, started: Instant) -> Result<()> {
        println!("\n7. fleet (from the manager):");
        let hosts = manager::fleet::hosts(&self.db, &Default::default(), 30)?;
        crate::manager_cmd::hosts_table(&self.db, &hosts)?;
        println!(
            "\ndone in {:.1} s. Files: {}",
            started.elapsed().as_secs_f64(),
            self.dir.display()
        );
        let (admin, db, manager) = (&self.admin, &self.db_url, &self.manager);
        println!("look further (run with --keep-running to keep everything up):");
        println!("  curl -s -H 'Authorization: Bearer {admin}' {manager}/api/v1/hosts");
        println!(
            "  curl -s {}/status    curl -s {}/metrics",
            self.parent_url, self.child_url
        );
        println!("  updraft admin --db {db} hosts");
        println!("  updraft admin --db {db} coverage CP-1519 --product scanner --requires-build '>=9.5.1514'");
        println!(
            "  updraft agent status --config {}",
            self.path("agent-legacy/agent.toml").display()
        );
        Ok(())
    }

    /// Poll the manager's host list (every 300 ms, at most `secs`) until `done` says so; it
    /// returns whether it is done and what it saw.
    fn wait(
        &self,
        what: &str,
        secs: u64,
        done: impl Fn(&[HostView]) -> (bool, String),
    ) -> Result<()> {
        let every = Duration::from_millis(300);
        launch::eventually(what, Duration::from_secs(secs), every, || {
            let hosts = manager::fleet::hosts(&self.db, &Default::default(), 30)
                .map_err(|e| e.to_string())?;
            match done(&hosts) {
                (true, _) => Ok(()),
                (false, seen) => Err(seen),
            }
        })
        .with_context(|| format!("see the logs in {}", self.path("logs").display()))
    }
}

fn pattern(h: &HostView) -> Option<&str> {
    h.host
        .components
        .get("antimalware.pattern")
        .map(String::as_str)
}

fn count<'h>(hosts: impl Iterator<Item = &'h HostView>, f: impl Fn(&HostView) -> bool) -> usize {
    hosts.filter(|h| f(h)).count()
}

/// A patch archive (tar) holding `bin/scanner`.
fn patch_archive(scanner: &[u8]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(scanner.len() as u64);
    h.set_mode(0o755);
    h.set_cksum();
    tar.append_data(&mut h, "bin/scanner", scanner)?;
    Ok(tar.into_inner()?)
}
