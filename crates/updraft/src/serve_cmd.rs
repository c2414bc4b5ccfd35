//! `updraft serve DIR`: the origin, serving a repository directory over HTTP.

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
}

pub fn run(args: &ServeArgs) -> Result<()> {
    crate::runtime()?.block_on(async {
        let server = transport::serve_origin(&args.dir, &args.listen)
            .await
            .with_context(|| format!("cannot serve {}", args.dir.display()))?;
        println!(
            "serving {} at http://{}/metadata/ and http://{}/targets/ (Ctrl-C stops)",
            args.dir.display(),
            server.addr,
            server.addr
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        server.shutdown().await?;
        Ok(())
    })
}
