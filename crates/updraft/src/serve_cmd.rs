//! `updraft serve DIR`: the origin, serving a repository directory over HTTP; and the flags
//! bounding served connections, shared by `serve`, `relay` and `manager`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct ServeArgs {
    /// Repository directory (made by `updraft repo init`)
    dir: PathBuf,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    limits: ServeFlags,
}

/// Bounds on served connections (the same keys in a configuration file).
#[derive(Args)]
pub struct ServeFlags {
    /// Seconds a client has to send a complete request head (from connecting, or from the
    /// first byte of a later request) [default: 10]
    #[arg(long, value_name = "SECS")]
    header_timeout: Option<u64>,
    /// Seconds a client has to complete the TLS handshake [default: 10]
    #[arg(long, value_name = "SECS")]
    handshake_timeout: Option<u64>,
    /// Seconds a connection may stay without traffic (kept alive between requests, or a
    /// response or body that does not move) [default: 60]
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Connections served at once at most; the descriptor limit lowers it further (an eighth
    /// of it, at least 32, stays free) [default: 16384]
    #[arg(long, value_name = "N")]
    max_connections: Option<u64>,
}

impl ServeFlags {
    /// The flags given, over `settings` (from a file or the defaults).
    pub fn apply(&self, settings: &mut transport::ServeSettings) {
        use crate::flags::set;
        set(&mut settings.header_timeout, &self.header_timeout);
        set(&mut settings.handshake_timeout, &self.handshake_timeout);
        set(&mut settings.idle_timeout, &self.idle_timeout);
        set(&mut settings.max_connections, &self.max_connections);
    }
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let mut settings = transport::ServeSettings::default();
    args.limits.apply(&mut settings);
    let limits = settings.limits()?;
    crate::runtime()?.block_on(async {
        let server = transport::serve_origin_with(&args.dir, &args.listen, limits)
            .await
            .with_context(|| format!("cannot serve {}", args.dir.display()))?;
        transport::announce(format_args!(
            "serving {} at http://{}/metadata/ and http://{}/targets/ (Ctrl-C or SIGTERM stops)",
            args.dir.display(),
            server.addr,
            server.addr
        ));
        crate::shutdown_signal("origin").await;
        server.shutdown().await?;
        tracing::info!("origin stopped");
        Ok(())
    })
}
