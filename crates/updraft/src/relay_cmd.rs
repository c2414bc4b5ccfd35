//! `updraft relay …`: run a relay, or export/import offline bundles.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use relay::RelayConfig;

mod own_build;

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
        /// Carry deltas in place of full files: leave out the full files that deltas produce
        /// or start from. For a site that holds the previous versions (one bundle behind): its
        /// relay rebuilds the new files on import and counts those it could not rebuild as
        /// missing (import a full bundle then)
        #[arg(long)]
        deltas: bool,
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
    /// Extra CA certificate (PEM) trusted besides the system roots, for HTTPS upstreams AND the
    /// manager (`--upstream-ca`, its former name, is still accepted; `ca` or `upstream_ca` in a
    /// config file)
    #[arg(long, visible_alias = "upstream-ca", value_name = "PEM")]
    ca: Option<PathBuf>,
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
    #[command(flatten)]
    serve: Box<crate::serve_cmd::ServeFlags>,
    /// Check the configuration (and the trust anchor and cache it names) with this build and
    /// exit: what a new build of a self-upgrading relay must pass before it is kept
    #[arg(long)]
    check: bool,
    /// Run as the worker of a supervising `updraft relay` (self-upgrade; not for manual use)
    #[arg(long, hide = true)]
    worker: bool,
}

fn config(a: &RunArgs) -> Result<RelayConfig> {
    use crate::flags::{set, set_some};
    let mut c = match &a.config {
        Some(path) => RelayConfig::from_file(path)?,
        None => RelayConfig::new(
            a.trusted_root
                .clone()
                .context("--trusted-root FILE is required (or --config FILE)")?,
            a.cache
                .clone()
                .context("--cache DIR is required (or --config FILE)")?,
        ),
    };
    if !a.upstreams.is_empty() {
        c.upstreams = a.upstreams.clone();
    }
    set(&mut c.trusted_root, &a.trusted_root);
    set(&mut c.cache, &a.cache);
    set(&mut c.listen, &a.listen);
    set(&mut c.poll_interval, &a.poll_interval);
    set(&mut c.keep_views, &a.keep_views);
    set_some(&mut c.tls_cert, &a.tls_cert);
    set_some(&mut c.tls_key, &a.tls_key);
    set_some(&mut c.http.ca, &a.ca);
    set(&mut c.http.first_byte_timeout, &a.first_byte_timeout);
    set(&mut c.http.stall_timeout, &a.stall_timeout);
    set(&mut c.http.min_rate, &a.min_rate);
    set(&mut c.offline_grace, &a.offline_grace);
    c.offline |= a.offline;
    set_some(&mut c.link.manager, &a.manager);
    set_some(&mut c.link.enroll_token_file, &a.enroll_token_file);
    set_some(&mut c.link.hostname, &a.hostname);
    a.serve.apply(&mut c.serve);
    Ok(c)
}

pub fn run(args: &RelayArgs) -> Result<()> {
    match &args.cmd {
        Some(RelayCommand::Export {
            cache,
            out,
            components,
            deltas,
        }) => {
            let selection = relay::bundle::Selection {
                components: components.clone(),
                deltas: *deltas,
            };
            export(cache, out, &selection)
        }
        Some(RelayCommand::Import {
            cache,
            trusted_root,
            offline_grace,
            keep_views,
            bundle,
        }) => {
            let settings = relay::SyncSettings {
                trusted_root: relay::trust_anchor(trusted_root)?,
                keep_views: *keep_views,
                offline_grace: relay::config::offline_grace(*offline_grace)?,
                max_roles: 100_000,
                progress: true,
            };
            import(cache, bundle, &settings)
        }
        None => serve(&args.run),
    }
}

fn export(cache: &Path, out: &Path, selection: &relay::bundle::Selection) -> Result<()> {
    let m = relay::bundle::export(cache, out, selection, true)?;
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

fn import(cache: &Path, bundle: &Path, settings: &relay::SyncSettings) -> Result<()> {
    let out = relay::bundle::import(cache, bundle, settings).with_context(|| {
        format!(
            "bundle {} was not imported; the view in service is unchanged",
            bundle.display()
        )
    })?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "imported {}: view {} ({}), {} target file(s) verified, {} rebuilt from deltas, {} not in the bundle",
        bundle.display(),
        out.view,
        if out.changed { "new" } else { "unchanged" },
        out.downloaded,
        out.rebuilt,
        out.skipped_missing
    );
    Ok(())
}

/// Run the relay, or with `--once` sync once and print the outcome. With `[self_upgrade]`,
/// `relay --config FILE` supervises a worker that runs from the installed build (see
/// `own_build`).
fn serve(a: &RunArgs) -> Result<()> {
    let c = config(a)?;
    if a.check {
        c.validate()?;
        relay::Cache::open(&c.cache)?;
        println!(
            "updraft {} relay: configuration valid",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(());
    }
    if a.once {
        let anchor = c.validate()?;
        let cache = relay::Cache::open(&c.cache)?;
        let fetcher = relay::fetcher(&c)?;
        let shared = relay::Shared::new(c.offline_grace);
        let settings = c.sync_settings(anchor, true)?;
        let out = relay::sync_cycle(&cache, &settings, &fetcher, &c.upstreams, &shared)?;
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if c.offline && !c.upstreams.is_empty() {
        bail!("--offline serves the cache only: remove --upstream, or drop --offline");
    }
    let companion = match &c.self_upgrade {
        Some(up) if !c.offline => {
            let file = a.config.as_deref().context(
                "[self_upgrade] needs the configuration in a file (--config FILE): the supervisor starts every build with it",
            )?;
            if c != RelayConfig::from_file(file)? {
                bail!("with [self_upgrade], give every setting in {} and no other flag than --config: the supervisor starts each build with --config only", file.display());
            }
            c.validate()?;
            let own = own_build::agent(&c, up, file)?;
            if !a.worker {
                return crate::supervisor::supervise(&own, file, "relay");
            }
            agent::upgrade::end_with_supervisor();
            let running = std::env::var(crate::supervisor::BUILD_ENV).unwrap_or_default();
            Some(Box::new(own_build::OwnBuild {
                agent: own,
                running,
            }) as Box<dyn relay::Companion>)
        }
        _ => None,
    };
    crate::runtime()?.block_on(relay::run_with(
        c,
        crate::shutdown_signal("relay"),
        companion,
    ))?;
    tracing::info!("relay stopped");
    Ok(())
}
