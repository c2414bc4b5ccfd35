//! Metadata parsing and verification: the first byte picks a step of the client workflow, the
//! rest is the file offered to it after the fixture's valid metadata for the earlier steps.
//! Modes 0-6 offer the bytes as they are (parsing, signature and hash checks); modes 7-11 read
//! them as the JSON of a `signed` object, sign it with the fixture's keys and list it in a
//! freshly signed snapshot/timestamp, so that fuzzed content reaches the checks after
//! signatures (versions, expiry, key ids, delegations). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tuf::delegation::roles_for_target;
use tuf::TrustedSet;
use updraft_fuzz::{
    fixture, now, sign, snapshot_for, timestamp_for, version_of, Fixture, DELEGATED,
};

/// A set trusting the fixture's root.
fn trusted(f: &Fixture) -> TrustedSet {
    TrustedSet::new(&f.root, now()).expect("fixture root")
}

/// A set trusting the fixture's root, timestamp and snapshot.
fn with_snapshot(f: &Fixture) -> TrustedSet {
    let mut ts = trusted(f);
    ts.update_timestamp(&f.timestamp)
        .expect("fixture timestamp");
    ts.update_snapshot(&f.snapshot, false)
        .expect("fixture snapshot");
    ts
}

/// Look paths up in whatever delegations a verified targets role carries.
fn probe_delegations(ts: &TrustedSet, role: &str) {
    if let Some(t) = ts.targets(role) {
        if let Some(d) = &t.delegations {
            for path in ["content/delegated/1.0/x.dat", "content/a/b", "", "a"] {
                let _ = roles_for_target(d, path);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 12 {
        0 => {
            if let Ok(ts) = TrustedSet::new(rest, now()) {
                let _ = ts.check_final_root();
                let _ = ts.fast_forward_reset();
            }
        }
        1 => {
            let mut ts = trusted(f);
            if ts.update_root(rest).is_ok() {
                let _ = ts.check_final_root();
                let _ = ts.fast_forward_reset();
                let _ = ts.update_timestamp(&f.timestamp);
            }
        }
        2 => {
            let mut ts = trusted(f);
            if ts.update_timestamp(rest).is_ok() {
                let _ = ts.update_timestamp(rest);
                let _ = ts.update_snapshot(&f.snapshot, false);
            }
        }
        3 | 4 => {
            let mut ts = trusted(f);
            if mode % 12 == 3 {
                ts.update_timestamp(&f.timestamp)
                    .expect("fixture timestamp");
            } else {
                ts.load_local_timestamp(&f.timestamp)
                    .expect("fixture timestamp");
            }
            if ts.update_snapshot(rest, mode % 12 == 4).is_ok() {
                let _ = ts.targets_meta("targets");
                let _ = ts.update_targets(&f.targets);
            }
        }
        5 => {
            let mut ts = with_snapshot(f);
            if ts.update_targets(rest).is_ok() {
                probe_delegations(&ts, "targets");
                let _ = ts.update_delegated_targets(&f.delegated, DELEGATED, "targets");
            }
        }
        6 => {
            let mut ts = with_snapshot(f);
            ts.update_targets(&f.targets).expect("fixture targets");
            if ts
                .update_delegated_targets(rest, DELEGATED, "targets")
                .is_ok()
            {
                probe_delegations(&ts, DELEGATED);
                let _ = ts.trust_loaded_via(DELEGATED, "targets");
            }
        }
        m => {
            let Ok(signed) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            signed_mode(f, m, &signed);
        }
    }
});

/// Modes 7-11: `signed` signed with the fixture's keys for the role under test.
fn signed_mode(f: &Fixture, mode: u8, signed: &Value) {
    match mode {
        7 => {
            let Some(bytes) = sign("root", signed) else {
                return;
            };
            let _ = TrustedSet::new(&bytes, now());
            let mut ts = trusted(f);
            if ts.update_root(&bytes).is_ok() {
                let _ = ts.check_final_root();
                let _ = ts.fast_forward_reset();
                let _ = ts.update_timestamp(&f.timestamp);
            }
        }
        8 => {
            let Some(bytes) = sign("timestamp", signed) else {
                return;
            };
            let mut ts = trusted(f);
            if ts.update_timestamp(&bytes).is_ok() {
                let _ = ts.update_timestamp(&f.timestamp);
                let _ = ts.update_snapshot(&f.snapshot, false);
            }
        }
        9 => {
            let Some(bytes) = sign("snapshot", signed) else {
                return;
            };
            let mut ts = trusted(f);
            // A version the harness cannot list (e.g. 0) makes its own metadata invalid.
            if ts
                .update_timestamp(&timestamp_for(&bytes, version_of(signed)))
                .is_err()
            {
                return;
            }
            if ts.update_snapshot(&bytes, false).is_ok() {
                let _ = ts.targets_meta("targets");
                let _ = ts.update_targets(&f.targets);
            }
            let mut local = trusted(f);
            local
                .load_local_timestamp(&f.timestamp)
                .expect("fixture timestamp");
            if local.update_snapshot(&bytes, true).is_ok() {
                let _ = local.update_snapshot(&f.snapshot, false);
            }
        }
        10 => {
            let Some(bytes) = sign("targets", signed) else {
                return;
            };
            let snap = snapshot_for(&[
                ("targets", &bytes, version_of(signed)),
                (DELEGATED, &f.delegated, f.delegated_version),
            ]);
            let mut ts = trusted(f);
            // A version the harness cannot list (e.g. 0) makes its own metadata invalid.
            if ts
                .update_timestamp(&timestamp_for(&snap, 1_000_000))
                .is_err()
            {
                return;
            }
            if ts.update_snapshot(&snap, false).is_err() {
                return;
            }
            if ts.update_targets(&bytes).is_ok() {
                probe_delegations(&ts, "targets");
                let _ = ts.update_delegated_targets(&f.delegated, DELEGATED, "targets");
                let _ = ts.trust_loaded_via(DELEGATED, "targets");
            }
        }
        _ => {
            let Some(bytes) = sign(DELEGATED, signed) else {
                return;
            };
            let snap = snapshot_for(&[
                ("targets", &f.targets, f.targets_version),
                (DELEGATED, &bytes, version_of(signed)),
            ]);
            let mut ts = trusted(f);
            // A version the harness cannot list (e.g. 0) makes its own metadata invalid.
            if ts
                .update_timestamp(&timestamp_for(&snap, 1_000_000))
                .is_err()
            {
                return;
            }
            if ts.update_snapshot(&snap, false).is_err() {
                return;
            }
            ts.update_targets(&f.targets).expect("fixture targets");
            if ts
                .update_delegated_targets(&bytes, DELEGATED, "targets")
                .is_ok()
            {
                probe_delegations(&ts, DELEGATED);
            }
        }
    }
}
