//! The publisher's deltas: when a file of a new version is added, make deltas to it from the
//! same component's previous versions (same platforms) and stage them as ordinary targets in
//! the same role.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, ValueEnum};
use delta::{Algorithm, Choice};
use model::delta::DeltaInfo;
use model::{ContentInfo, Kind, Version};
use tuf::repo::Repository;

/// Which delta algorithms to try.
#[derive(Clone, Copy, ValueEnum)]
pub enum DeltaAlgorithm {
    /// The smaller of zstd and bsdiff; zstd only for files over 64 MiB
    Auto,
    /// zstd with the previous version as reference prefix (best on data)
    Zstd,
    /// bsdiff's matching, streams packed with zstd (best on executables)
    Bsdiff,
    /// Both, keeping the smaller
    Smallest,
}

#[derive(Args)]
pub struct DeltaArgs {
    /// Make deltas from this many previous versions of the component (0: none)
    #[arg(long = "deltas", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub previous: u32,
    /// Delta algorithm
    #[arg(long, value_enum, default_value = "auto")]
    pub delta_algorithm: DeltaAlgorithm,
    /// Leave out a delta larger than this share of the full file, in percent
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub delta_max_percent: u8,
}

/// One delta made (or left out), for the report.
pub struct Made {
    pub from: String,
    pub full: u64,
    pub took: Duration,
    /// The algorithm and size of the delta staged, or why none is.
    pub outcome: std::result::Result<(Algorithm, u64), String>,
}

/// The delta from `base` to `target`, unless hosts could not apply it within their memory
/// budget, making it failed, or it is larger than `max_percent` of the target.
fn one(
    choice: Choice,
    base: &[u8],
    target: &[u8],
    max_percent: u8,
) -> std::result::Result<delta::Made, String> {
    let (b, t) = (base.len() as u64, target.len() as u64);
    let budget = |alg: Algorithm, d: u64| delta::apply_memory(alg, b, d, t) <= delta::MEMORY_BUDGET;
    if !budget(Algorithm::Zstd, 0) {
        return Err(format!(
            "files this large need more than the {} MiB hosts allow to apply a delta",
            delta::MEMORY_BUDGET >> 20
        ));
    }
    // bsdiff needs more memory to apply than zstd: when hosts could not apply it, zstd only.
    let choice = match choice {
        Choice::Only(Algorithm::Bsdiff) if !budget(Algorithm::Bsdiff, 0) => {
            return Err(format!(
            "a bsdiff delta of files this large needs more than the {} MiB hosts allow to apply",
            delta::MEMORY_BUDGET >> 20
        ))
        }
        Choice::Auto | Choice::Smallest if !budget(Algorithm::Bsdiff, 0) => {
            Choice::Only(Algorithm::Zstd)
        }
        other => other,
    };
    let made = delta::make(choice, base, target).map_err(|e| e.to_string())?;
    let size = made.bytes.len() as u64;
    if !budget(made.algorithm, size) {
        return Err(format!(
            "applying it needs more than the {} MiB hosts allow",
            delta::MEMORY_BUDGET >> 20
        ));
    }
    if size.saturating_mul(100) > t.saturating_mul(u64::from(max_percent)) {
        return Err(format!(
            "{size} bytes {}: larger than {max_percent} % of the full file",
            made.algorithm
        ));
    }
    Ok(made)
}

/// The previous versions' files a delta to `file_name` of `info` can start from: newest first,
/// at most `k` versions, same component and platforms; in each, the file of the same name, or
/// the only file.
pub fn bases(
    repo: &Repository,
    info: &ContentInfo,
    file_name: &str,
    k: usize,
) -> Vec<(String, String)> {
    let Ok(new) = info.version.parse::<Version>() else {
        return Vec::new();
    };
    let mut by_version: BTreeMap<Version, Vec<String>> = BTreeMap::new();
    for (path, _role, tf) in repo.list_targets() {
        let Ok(Some(old)) = ContentInfo::for_target(&path, tf.custom.as_ref()) else {
            continue;
        };
        let same = old.component == info.component
            && old.kind != Kind::Patch
            && sorted(&old.platforms) == sorted(&info.platforms);
        match old.version.parse::<Version>() {
            Ok(v) if same && v < new => by_version.entry(v).or_default().push(path),
            _ => {}
        }
    }
    by_version
        .into_iter()
        .rev()
        .filter_map(|(v, files)| {
            let same_name = files
                .iter()
                .find(|p| p.rsplit('/').next() == Some(file_name));
            let only = (files.len() == 1).then(|| &files[0]);
            same_name
                .or(only)
                .map(|p| (v.as_str().to_string(), p.clone()))
        })
        .take(k)
        .collect()
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v
}

/// Make and stage the deltas to the target `produces` (just added to `role` with `bytes`).
pub fn make_all(
    repo: &mut Repository,
    role: &str,
    info: &ContentInfo,
    produces: &str,
    bytes: &[u8],
    args: &DeltaArgs,
) -> Result<Vec<Made>> {
    if info.kind == Kind::Patch || args.previous == 0 {
        return Ok(Vec::new());
    }
    let file_name = produces.rsplit('/').next().unwrap_or(produces);
    let bases = bases(repo, info, file_name, args.previous as usize);
    let bar = crate::progress::steps(bases.len() as u64, "making deltas");
    let choice = match args.delta_algorithm {
        DeltaAlgorithm::Auto => Choice::Auto,
        DeltaAlgorithm::Zstd => Choice::Only(Algorithm::Zstd),
        DeltaAlgorithm::Bsdiff => Choice::Only(Algorithm::Bsdiff),
        DeltaAlgorithm::Smallest => Choice::Smallest,
    };
    let full = bytes.len() as u64;
    let mut out = Vec::new();
    for (from, base_path) in bases {
        bar.set_message(format!("delta from {from}"));
        let base = repo.read_target(&base_path)?;
        let started = Instant::now();
        let outcome = one(choice, &base, bytes, args.delta_max_percent);
        let took = started.elapsed();
        if let Ok(made) = &outcome {
            let d = DeltaInfo {
                component: info.component.clone(),
                from: from.clone(),
                to: info.version.clone(),
                algorithm: made.algorithm,
                base: base_path,
                produces: produces.to_string(),
            };
            repo.add_target_bytes(role, &d.target_path(), &made.bytes, Some(d.to_custom()))?;
        }
        out.push(Made {
            from,
            took,
            full,
            outcome: outcome.map(|m| (m.algorithm, m.bytes.len() as u64)),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The lines `repo add` prints for the deltas it made.
pub fn report(made: &[Made]) -> Vec<String> {
    made.iter()
        .map(|m| match &m.outcome {
            Ok((algorithm, bytes)) => format!(
                "  staged delta from {}: {bytes} bytes {algorithm} ({:.3} % of {} bytes), made in {:.2} s",
                m.from,
                *bytes as f64 * 100.0 / (m.full.max(1) as f64),
                m.full,
                m.took.as_secs_f64()
            ),
            Err(why) => format!("  left out delta from {}: {why}", m.from),
        })
        .collect()
}

/// The deltas that produce `target`: to remove with it.
pub fn producing(repo: &Repository, target: &str) -> Vec<String> {
    repo.list_targets()
        .into_iter()
        .filter(|(path, _, tf)| {
            matches!(DeltaInfo::for_target(path, tf.custom.as_ref()), Ok(Some(d)) if d.produces == target)
        })
        .map(|(path, _, _)| path)
        .collect()
}
