//! `updraft relay …`: run a relay, or export/import offline bundles.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use relay::RelayConfig;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RelayArgs {
    #[command(subcommand)]
    cmd: Option<RelayCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Write the view in service as one offline bundle (metadata with the whole root chain + targets)
    Export {
        /// Cache directory of the relay
        #[arg(long)]
        cache: PathBuf,
        /// Bundle file to write
        #[arg(long)]
        out: PathBuf,
        /// Only targets of these components (content/<component>/…); repeatable
        #[arg(long = "component")]
        components: Vec<String>,
    },
    /// Verify a bundle with the TUF client workflow and make it the view in service
    Import {
        /// Cache directory of the relay
        #[arg(long)]
        cache: PathBuf,
        /// The relay's trust anchor (root file shipped out of band)
        #[arg(long)]
        trusted_root: PathBuf,
        /// Accept timestamp/snapshot up to DAYS past expiry (air-gapped sites), with warnings
        #[arg(long, default_value_t = 0)]
        offline_grace: u64,
        /// Views kept on disk
        #[arg(long, default_value_t = 3)]
        keep_views: usize,
        /// The bundle file
        bundle: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// TOML file with the same keys as the flags (flags given on the command line win)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Upstream base URL (origin or parent relay), repeatable, in order of preference
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// Trust anchor: a root file shipped out of band (read-only)
    #[arg(long)]
    trusted_root: Option<PathBuf>,
    /// Cache directory (trusted metadata, objects, views)
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Address to serve on [default: 127.0.0.1:8080]
    #[arg(long)]
    listen: Option<String>,
    /// Seconds between syncs [default: 300]
    #[arg(long)]
    poll_interval: Option<u64>,
    /// Views kept on disk [default: 3]
    #[arg(long)]
    keep_views: Option<usize>,
    /// TLS certificate chain (PEM) to serve HTTPS
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Extra CA certificate (PEM) for HTTPS upstreams, besides the system roots
    #[arg(long)]
    upstream_ca: Option<PathBuf>,
    /// Seconds an upstream may take to start answering before the next one is tried [default: 10]
    #[arg(long, value_name = "SECS")]
    first_byte_timeout: Option<u64>,
    /// Progress window: a download slower than --min-rate over SECS (or silent) is cut off and the
    /// next upstream is tried [default: 30]
    #[arg(long, value_name = "SECS")]
    stall_timeout: Option<u64>,
    /// Minimum download rate in bytes per second per progress window; 0: stalls only [default: 512]
    #[arg(long, value_name = "BYTES")]
    min_rate: Option<u64>,
    /// Serve expired timestamp/snapshot up to DAYS past expiry (air-gapped sites) [default: 0]
    #[arg(long)]
    offline_grace: Option<u64>,
    /// Serve the cache only (air-gapped relay fed by bundles): no upstream, no sync
    #[arg(long)]
    offline: bool,
    /// Sync once, print the outcome as JSON and exit (no server)
    #[arg(long)]
    once: bool,
    /// Manager base URL: heartbeats after every sync, policy (upstreams, poll interval) applied
    #[arg(long)]
    manager: Option<String>,
    /// File with an enrolment token (used once; the credential is kept 0600 in the cache)
    #[arg(long)]
    enroll_token_file: Option<PathBuf>,
    /// Name reported to the manager [default: the system host name]
    #[arg(long)]
    hostname: Option<String>,
}

fn config(a: &RunArgs) -> Result<RelayConfig> {
    let mut c = match &a.config {
        Some(path) => RelayConfig::from_file(path)?,
        None => RelayConfig {
            upstreams: Vec::new(),
            trusted_root: a
                .trusted_root
                .clone()
                .context("--trusted-root FILE is required (or --config FILE)")?,
            cache: a
                .cache
                .clone()
                .context("--cache DIR is required (or --config FILE)")?,
            listen: "127.0.0.1:8080".into(),
            poll_interval: 300,
            keep_views: 3,
            tls_cert: None,
            tls_key: None,
            upstream_ca: None,
            first_byte_timeout: relay::default_first_byte_timeout(),
            stall_timeout: relay::default_stall_timeout(),
            min_rate: relay::default_min_rate(),
            offline_grace: 0,
            offline: false,
            manager: None,
            enroll_token_file: None,
            hostname: None,
        },
    };
    if !a.upstreams.is_empty() {
        c.upstreams = a.upstreams.clone();
    }
    if let Some(v) = &a.trusted_root {
        c.trusted_root = v.clone();
    }
    if let Some(v) = &a.cache {
        c.cache = v.clone();
    }
    if let Some(v) = &a.listen {
        c.listen = v.clone();
    }
    if let Some(v) = a.poll_interval {
        c.poll_interval = v;
    }
    if let Some(v) = a.keep_views {
        c.keep_views = v;
    }
    if a.tls_cert.is_some() {
        c.tls_cert = a.tls_cert.clone();
    }
    if a.tls_key.is_some() {
        c.tls_key = a.tls_key.clone();
    }
    if a.upstream_ca.is_some() {
        c.upstream_ca = a.upstream_ca.clone();
    }
    if let Some(v) = a.first_byte_timeout {
        c.first_byte_timeout = v;
    }
    if let Some(v) = a.stall_timeout {
        c.stall_timeout = v;
    }
    if let Some(v) = a.min_rate {
        c.min_rate = v;
    }
    if let Some(v) = a.offline_grace {
        c.offline_grace = v;
    }
    c.offline |= a.offline;
    if a.manager.is_some() {
        c.manager = a.manager.clone();
    }
    if a.enroll_token_file.is_some() {
        c.enroll_token_file = a.enroll_token_file.clone();
    }
    if a.hostname.is_some() {
        c.hostname = a.hostname.clone();
    }
    Ok(c)
}

pub fn run(args: &RelayArgs) -> Result<()> {
    match &args.cmd {
        Some(RelayCommand::Export {
            cache,
            out,
            components,
        }) => {
            let m = relay::bundle::export(cache, out, components, true)?;
            println!(
                "wrote {}: bundle format {}, root v{}, timestamp v{}, {} metadata file(s), {} target file(s)",
                out.display(),
                m.format,
                m.versions.root,
                m.versions.timestamp,
                m.metadata.len(),
                m.targets.len()
            );
            Ok(())
        }
        Some(RelayCommand::Import {
            cache,
            trusted_root,
            offline_grace,
            keep_views,
            bundle,
        }) => {
            let anchor = relay::trust_anchor(trusted_root)?;
            let settings = relay::SyncSettings {
                trusted_root: anchor,
                keep_views: *keep_views,
                offline_grace: time::Duration::days(*offline_grace as i64),
                max_roles: 100_000,
                progress: true,
            };
            let out = relay::bundle::import(cache, bundle, &settings).with_context(|| {
                format!(
                    "bundle {} was not imported; the view in service is unchanged",
                    bundle.display()
                )
            })?;
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "imported {}: view {} ({}), {} target file(s) verified, {} not in the bundle",
                bundle.display(),
                out.view,
                if out.changed { "new" } else { "unchanged" },
                out.downloaded,
                out.skipped_missing
            );
            Ok(())
        }
        None => {
            let c = config(&args.run)?;
            if args.run.once {
                let anchor = c.validate()?;
                let cache = relay::Cache::open(&c.cache)?;
                let fetcher = relay::fetcher(&c)?;
                let shared = relay::Shared::new(c.offline_grace);
                let out = relay::sync_cycle(
                    &cache,
                    &c.sync_settings(anchor, true),
                    &fetcher,
                    &c.upstreams,
                    &shared,
                )?;
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            if c.offline && !c.upstreams.is_empty() {
                bail!("--offline serves the cache only: remove --upstream, or drop --offline");
            }
            crate::runtime()?.block_on(relay::run(c, async {
                let _ = tokio::signal::ctrl_c().await;
            }))?;
            Ok(())
        }
    }
}
