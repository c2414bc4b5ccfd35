//! `updraft demo`: a publisher, an origin and a client on 127.0.0.1 in a temporary directory,
//! showing signed publishing, verified download and a key rotation the client follows alone.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use content::{ContentInfo, Kind};
use tuf::repo::{InitOptions, Repository};
use tuf::{Updater, UpdaterConfig};

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the temporary directory instead of removing it
    #[arg(long)]
    keep: bool,
}

fn publish(
    repo: &mut Repository,
    component: &str,
    version: &str,
    kind: Kind,
    body: &[u8],
) -> Result<String> {
    let info = ContentInfo {
        kind,
        component: component.into(),
        version: version.into(),
        product: None,
        requires_build: None,
        build: None,
        patch_id: None,
        platforms: vec![],
    };
    let path = info.target_path(&format!("{component}.dat"))?;
    repo.add_target_bytes("targets", &path, body, Some(info.to_custom()))?;
    Ok(path)
}

fn fetch_all(
    up: &mut Updater<transport::HttpFetcher>,
    paths: &[String],
    dir: &Path,
    base: &str,
) -> Result<()> {
    let out = up.refresh()?;
    println!(
        "  client: root v{}, timestamp v{}, snapshot v{}, targets v{} ({} file(s) fetched)",
        out.root_version,
        out.timestamp_version,
        out.snapshot_version,
        out.targets_version,
        out.fetched.len()
    );
    for p in paths {
        let info = up
            .target_info(p)?
            .with_context(|| format!("{p} not in metadata"))?;
        up.download_target(&info, dir, base)?;
        println!("  verified {p} ({} bytes)", info.length());
    }
    Ok(())
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("updraft-demo-").tempdir()?;
    let repo_dir = tmp.path().join("repo");
    println!(
        "1. publisher: creating a repository in {}",
        repo_dir.display()
    );
    let mut repo = Repository::init(&repo_dir, &InitOptions::default())?;
    let mut paths = vec![
        publish(
            &mut repo,
            "antimalware.pattern",
            "18.523.00",
            Kind::Pattern,
            b"pattern 18.523.00",
        )?,
        publish(
            &mut repo,
            "antimalware.engine",
            "12.0.1",
            Kind::Engine,
            b"engine 12.0.1",
        )?,
        publish(
            &mut repo,
            "ips.rules",
            "2026.11.1",
            Kind::Rules,
            b"rules 2026.11.1",
        )?,
    ];
    repo.publish()?;
    let root_v1 = std::fs::read(repo.metadata_dir().join("1.root.json"))?;

    crate::runtime()?.block_on(async {
        let server = transport::serve_origin(&repo_dir, "127.0.0.1:0").await?;
        let base = format!("http://{}", server.addr);
        println!("2. origin: serving at {base}");
        let client_dir = tmp.path().join("client");
        let target_dir = client_dir.join("targets");
        let meta_url = format!("{base}/metadata");
        let target_url = format!("{base}/targets");
        let result = tokio::task::spawn_blocking(move || -> Result<()> {
            let fetcher = transport::HttpFetcher::new(&transport::HttpConfig::default())?;
            let mut up = Updater::new(client_dir.join("metadata"), &meta_url, root_v1, fetcher, UpdaterConfig::default())?;
            println!("3. client trusting root v1 downloads and verifies everything");
            fetch_all(&mut up, &paths, &target_dir, &target_url)?;
            println!("4. publisher rotates the root key twice and the timestamp key, publishes pattern 18.525.00");
            repo.rotate("root", 1, 1)?;
            repo.rotate("root", 2, 2)?;
            repo.rotate("timestamp", 1, 1)?;
            paths.push(publish(&mut repo, "antimalware.pattern", "18.525.00", Kind::Pattern, b"pattern 18.525.00")?);
            repo.publish()?;
            println!("5. the same client walks the root chain and carries on");
            fetch_all(&mut up, &paths, &target_dir, &target_url)?;
            println!("6. an unchanged refresh downloads only timestamp.json (after the spec's probe for a newer root):");
            let out = up.refresh()?;
            println!("  fetched {:?}", out.fetched);
            Ok(())
        })
        .await
        .context("demo client task")?;
        server.shutdown().await?;
        result
    })?;
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    if args.keep {
        let kept = tmp.keep();
        println!("files kept in {}", kept.display());
    }
    Ok(())
}
