//! Route choice and rebuilding over a real signed repository (the engine, the client over the
//! file fetcher), so every `TargetInfo` is a verified one.
use std::path::{Path, PathBuf};

use model::delta::{Algorithm, DeltaInfo};
use tuf::repo::{InitOptions, Repository};
use tuf::{FileFetcher, TargetInfo, Updater, UpdaterConfig};

use super::*;

const C: &str = "antimalware.pattern";

fn full(v: &str) -> String {
    format!("content/{C}/{v}/p.dat")
}

/// Pseudo-random bytes (xorshift) with `v` bytes changed: versions that differ a little.
fn body(v: u8, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u64 | 1;
    let mut b: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    for i in 0..usize::from(v) {
        b[i * 97 % len] ^= v;
    }
    b
}

struct Bed {
    tmp: tempfile::TempDir,
    repo: Repository,
}

impl Bed {
    fn new() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init(&tmp.path().join("repo"), &InitOptions::default()).unwrap();
        Bed { tmp, repo }
    }
    fn add_full(&mut self, v: &str, bytes: &[u8]) {
        self.repo
            .add_target_bytes("targets", &full(v), bytes, None)
            .unwrap();
    }
    /// Sign a delta from `from` to `to` with these bytes (made or forged).
    fn add_delta(&mut self, from: &str, to: &str, bytes: &[u8]) -> String {
        let d = DeltaInfo {
            component: C.into(),
            from: from.into(),
            to: to.into(),
            algorithm: Algorithm::Zstd,
            base: full(from),
            produces: full(to),
        };
        let path = d.target_path();
        self.repo
            .add_target_bytes("targets", &path, bytes, Some(d.to_custom()))
            .unwrap();
        path
    }
    fn delta(&mut self, from: (&str, &[u8]), to: (&str, &[u8])) -> String {
        let made = delta::make(delta::Choice::Only(Algorithm::Zstd), from.1, to.1).unwrap();
        self.add_delta(from.0, to.0, &made.bytes)
    }
    fn listing(&mut self) -> (Updater<FileFetcher>, Vec<TargetInfo>) {
        self.repo.publish().unwrap();
        let root = std::fs::read(self.repo.metadata_dir().join("1.root.json")).unwrap();
        let dir = tempfile::tempdir_in(self.tmp.path()).unwrap().keep();
        let meta = self.repo.metadata_dir().to_string_lossy().into_owned();
        let mut up = Updater::new(dir, &meta, root, FileFetcher, UpdaterConfig::default()).unwrap();
        up.refresh().unwrap();
        let targets = up.all_targets(16).unwrap().targets;
        (up, targets)
    }
    /// A local copy of `bytes` as the held file of `v`.
    fn hold(&self, v: &str, bytes: &[u8]) -> PathBuf {
        let p = self.tmp.path().join("held").join(v);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

fn find<'a>(targets: &'a [TargetInfo], path: &str) -> &'a TargetInfo {
    targets.iter().find(|t| t.path() == path).unwrap()
}

fn held_map(held: Vec<(String, PathBuf)>) -> impl Fn(&str) -> Option<PathBuf> {
    move |p: &str| held.iter().find(|(h, _)| h == p).map(|(_, f)| f.clone())
}

fn rebuild_with(
    bed: &Bed,
    up: &mut Updater<FileFetcher>,
    route: &Route,
) -> (PathBuf, Result<(), Failure>) {
    let targets_url = bed.repo.targets_dir().to_string_lossy().into_owned();
    let dest = bed.tmp.path().join("out").join("p.dat");
    let mut fetch = |d: &TargetInfo, to: &Path| {
        up.download_target_to(d, to, &targets_url)
            .map_err(|e| e.to_string())
    };
    let r = rebuild(route, &mut fetch, &dest);
    (dest, r)
}

#[test]
fn the_cheapest_route_is_taken_and_rebuilds_the_signed_file() {
    let mut bed = Bed::new();
    let (b1, b2, b3) = (body(1, 100_000), body(2, 100_000), body(3, 100_000));
    bed.add_full("1.0", &b1);
    bed.add_full("2.0", &b2);
    bed.add_full("3.0", &b3);
    let step1 = bed.delta(("1.0", &b1), ("2.0", &b2));
    let step2 = bed.delta(("2.0", &b2), ("3.0", &b3));
    // A direct delta padded to cost more than the chain of two.
    let mut padded = delta::make(delta::Choice::Only(Algorithm::Zstd), &b1, &b3)
        .unwrap()
        .bytes;
    padded.extend(std::iter::repeat_n(0u8, 5000));
    bed.add_delta("1.0", "3.0", &padded);
    let (mut up, targets) = bed.listing();
    let deltas = Deltas::from_listing(&targets);
    let want = find(&targets, &full("3.0")).clone();
    let held = held_map(vec![(full("1.0"), bed.hold("1.0", &b1))]);
    let Choice::Route(route) = deltas.choose(&want, &held) else {
        panic!("no route");
    };
    let paths: Vec<&str> = route.steps.iter().map(|s| s.delta.path()).collect();
    assert_eq!(paths, [step1.as_str(), step2.as_str()]);
    let (dest, r) = rebuild_with(&bed, &mut up, &route);
    r.unwrap();
    assert_eq!(std::fs::read(dest).unwrap(), b3);

    // Holding 2.0 too, the single delta from it is cheaper.
    let held = held_map(vec![
        (full("1.0"), bed.hold("1.0", &b1)),
        (full("2.0"), bed.hold("2.0", &b2)),
    ]);
    let Choice::Route(route) = deltas.choose(&want, &held) else {
        panic!("no route");
    };
    assert_eq!(route.steps.len(), 1);
    assert_eq!(route.steps[0].delta.path(), step2);
}

#[test]
fn without_a_held_base_or_when_dearer_than_the_file_the_full_file_is_chosen_with_why() {
    let mut bed = Bed::new();
    let (b1, b2) = (body(1, 4_000), body(2, 4_000));
    bed.add_full("1.0", &b1);
    bed.add_full("2.0", &b2);
    bed.add_delta("1.0", "2.0", &[7u8; 5_000]);
    bed.add_delta("1.5", "2.0", b"small");
    let (_up, targets) = bed.listing();
    let deltas = Deltas::from_listing(&targets);
    let want = find(&targets, &full("2.0"));
    match deltas.choose(want, |_: &str| None) {
        Choice::Full(Some(why)) => assert!(why.contains("offered from 1.0, 1.5"), "{why}"),
        other => panic!("{other:?}"),
    }
    let held = held_map(vec![(full("1.0"), bed.hold("1.0", &b1))]);
    match deltas.choose(want, &held) {
        Choice::Full(Some(why)) => {
            assert!(why.contains("costs more than the full file"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // A host whose memory budget is smaller than a step needs.
    let small = Deltas::from_listing(&targets).with_budget(1 << 20);
    let held = held_map(vec![(full("1.5"), bed.hold("1.5", &b1))]);
    match small.choose(want, &held) {
        Choice::Full(Some(why)) => assert!(why.contains("needs more than the 1 MiB"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A file no delta produces: the full file, nothing to say.
    assert!(matches!(
        deltas.choose(find(&targets, &full("1.0")), &held),
        Choice::Full(None)
    ));
}

#[test]
fn a_forged_delta_fails_the_rebuild_and_leaves_nothing_at_dest() {
    let mut bed = Bed::new();
    let (b1, b2) = (body(1, 50_000), body(2, 50_000));
    bed.add_full("1.0", &b1);
    bed.add_full("2.0", &b2);
    let mut other = b2.clone();
    other[0] ^= 1;
    let forged = delta::make(delta::Choice::Only(Algorithm::Zstd), &b1, &other).unwrap();
    bed.add_delta("1.0", "2.0", &forged.bytes);
    let (mut up, targets) = bed.listing();
    let deltas = Deltas::from_listing(&targets);
    let want = find(&targets, &full("2.0")).clone();
    let held = held_map(vec![(full("1.0"), bed.hold("1.0", &b1))]);
    let Choice::Route(route) = deltas.choose(&want, &held) else {
        panic!("no route");
    };
    let (dest, r) = rebuild_with(&bed, &mut up, &route);
    let why = r.unwrap_err().to_string();
    assert!(why.contains("does not match the signed"), "{why}");
    assert!(!dest.exists());
    let leftovers = std::fs::read_dir(dest.parent().unwrap()).unwrap().count();
    assert_eq!(leftovers, 0, "temporary files left behind");
}

#[test]
fn many_deltas_to_one_file_keep_the_search_bounded() {
    let mut bed = Bed::new();
    bed.add_full("9.0", &body(9, 1_000));
    for i in 1..=60u32 {
        let v = format!("1.{i}");
        bed.add_full(&v, &body(1, 1_000));
        bed.add_delta(&v, "9.0", b"x");
    }
    let (_up, targets) = bed.listing();
    let deltas = Deltas::from_listing(&targets);
    let want = find(&targets, &full("9.0"));
    let base = bed.hold("any", b"base");
    let (routes, _) = deltas.routes(want, &|_: &str| Some(base.clone()));
    assert_eq!(routes.len(), MAX_PER_TARGET, "{} routes", routes.len());
}
