//! `updraft tuf-client`: the client-under-test command line of the TUF conformance suite.
//! The metadata directory holds the trusted metadata under unversioned names; its `root.json`
//! is the trust anchor (written by `init`, then advanced only by verified root updates).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tuf::{Updater, UpdaterConfig};

#[derive(Args)]
pub struct TufClientArgs {
    /// Directory of trusted metadata
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Base URL of the repository metadata
    #[arg(long)]
    metadata_url: Option<String>,
    /// Target path to download (repeatable; downloaded in order, stopping at the first failure)
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    /// Base URL of the repository targets
    #[arg(long)]
    target_base_url: Option<String>,
    /// Where downloaded targets are stored
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Maximum number of root versions walked per refresh
    #[arg(long, default_value_t = 256)]
    max_root_rotations: u32,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Trust this root (no network)
    Init { trusted_root: PathBuf },
    /// Run the client workflow
    Refresh,
    /// Refresh, then download each --target-name
    Download,
}

fn updater(args: &TufClientArgs) -> Result<Updater<transport::HttpFetcher>> {
    let url = args
        .metadata_url
        .as_deref()
        .context("--metadata-url is required")?;
    let root_path = args.metadata_dir.join("root.json");
    let root = std::fs::read(&root_path)
        .with_context(|| format!("cannot read {} (run `init` first)", root_path.display()))?;
    let config = UpdaterConfig {
        max_root_rotations: args.max_root_rotations,
        ..UpdaterConfig::default()
    };
    let fetcher = transport::HttpFetcher::new(&transport::HttpConfig::default())?;
    Ok(Updater::new(
        &args.metadata_dir,
        url,
        root,
        fetcher,
        config,
    )?)
}

pub fn run(args: &TufClientArgs) -> Result<()> {
    match &args.verb {
        Verb::Init { trusted_root } => {
            let bytes = std::fs::read(trusted_root)
                .with_context(|| format!("cannot read {}", trusted_root.display()))?;
            std::fs::create_dir_all(&args.metadata_dir)
                .with_context(|| format!("cannot create {}", args.metadata_dir.display()))?;
            tuf::fsutil::write_atomic(&args.metadata_dir.join("root.json"), &bytes)?;
            eprintln!(
                "initialized {} with {}",
                args.metadata_dir.display(),
                trusted_root.display()
            );
        }
        Verb::Refresh => {
            let out = updater(args)?.refresh()?;
            eprintln!(
                "refreshed: root v{}, timestamp v{}, snapshot v{}, targets v{}",
                out.root_version, out.timestamp_version, out.snapshot_version, out.targets_version
            );
        }
        Verb::Download => {
            let base = args
                .target_base_url
                .as_deref()
                .context("--target-base-url is required")?;
            let dir = args
                .target_dir
                .as_ref()
                .context("--target-dir is required")?;
            if args.target_names.is_empty() {
                bail!("--target-name is required");
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let mut up = updater(args)?;
            up.refresh()?;
            for name in &args.target_names {
                let info = up.target_info(name)?.with_context(|| {
                    format!("target {name:?} is not listed in trusted metadata")
                })?;
                let path = up.download_target(&info, dir, base)?;
                eprintln!("{name}: verified, {}", path.display());
            }
        }
    }
    Ok(())
}
