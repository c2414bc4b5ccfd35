//! `updraft repo …`: the publisher's commands.

mod deltas;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use model::{ContentInfo, Kind};
use tuf::crypto::KeyKind;
use tuf::repo::{InitOptions, Repository, RotateOptions};

/// Key types the publisher can create.
#[derive(Clone, Copy, ValueEnum)]
pub enum KeyType {
    Ed25519,
    Ecdsa,
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Create a repository: keys in DIR/keys (mode 0600), metadata in DIR/metadata, targets in DIR/targets
    Init {
        dir: PathBuf,
        /// Key type for new keys
        #[arg(long, value_enum, default_value = "ed25519")]
        key_type: KeyType,
        /// Keys per top-level role
        #[arg(long, default_value_t = 1)]
        keys: usize,
        /// Signature threshold of each top-level role
        #[arg(long, default_value_t = 1)]
        threshold: u64,
    },
    /// Stage a file as content/<component>/<version>/<file name> (sign it with `publish`)
    ///
    /// Deltas from the component's previous versions (same platforms) are made and staged
    /// with it as targets `<path>.from-<version>.delta`: hosts holding one of those versions
    /// download the delta instead of the whole file and check what it rebuilds against the
    /// file's signed hashes. Patches get no deltas.
    Add(AddArgs),
    /// Stage the removal of a target path
    Remove { dir: PathBuf, target: String },
    /// Sign new versions of changed targets roles, snapshot and timestamp
    Publish { dir: PathBuf },
    /// Replace the keys of a role with new keys and publish (a new root is signed by the old and
    /// the new root keys)
    ///
    /// The role keeps its number of keys and its threshold unless --keys or --threshold say
    /// otherwise: rotating a 2-of-3 role gives a 2-of-3 role with three new keys. A threshold
    /// below the current one weakens the role and needs --allow-lower-threshold (a warning is
    /// printed); a threshold above the number of keys is refused.
    Rotate {
        dir: PathBuf,
        /// root, targets, snapshot, timestamp or a delegated role
        #[arg(long)]
        role: String,
        /// Signature threshold after rotation [default: the role's current threshold]
        #[arg(long)]
        threshold: Option<u64>,
        /// Number of new keys [default: the role's current number of keys]
        #[arg(long)]
        keys: Option<usize>,
        /// Allow --threshold to be lower than the role's current threshold
        #[arg(long)]
        allow_lower_threshold: bool,
    },
    /// Delegate target paths to a new role with its own keys (staged)
    Delegate {
        dir: PathBuf,
        /// Name of the new role
        #[arg(long)]
        name: String,
        /// Delegating role
        #[arg(long, default_value = "targets")]
        parent: String,
        /// Shell-style path patterns (`*` and `?` do not match `/`)
        #[arg(long = "path", required = true)]
        paths: Vec<String>,
        /// Stop the search at this role for matching paths
        #[arg(long)]
        terminating: bool,
        #[arg(long, default_value_t = 1)]
        keys: usize,
        #[arg(long, default_value_t = 1)]
        threshold: u64,
    },
    /// Sign a new timestamp only (run it from a timer before the timestamp expires)
    Refresh { dir: PathBuf },
    /// Show versions, expiries, key ids, targets and staged changes
    Status {
        dir: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct AddArgs {
    dir: PathBuf,
    /// The file to publish
    file: PathBuf,
    /// Dotted component name, e.g. antimalware.pattern
    #[arg(long)]
    component: String,
    /// Dotted numeric version, e.g. 18.523.00 or 20.0.0-1234
    #[arg(long)]
    version: String,
    /// pattern, engine, rules, program or patch
    #[arg(long)]
    kind: String,
    /// Patches: the product patched
    #[arg(long)]
    product: Option<String>,
    /// Patches: minimum base build or constraints (>=9.5.1514 or >=9.5,<9.6)
    #[arg(long)]
    requires_build: Option<String>,
    /// Patches: the build that results
    #[arg(long)]
    build: Option<String>,
    /// Patches: a stable id such as CP-1519
    #[arg(long)]
    patch_id: Option<String>,
    /// Platform, e.g. linux-x86_64 (repeatable)
    #[arg(long = "platform")]
    platforms: Vec<String>,
    /// Targets role to add to (a delegated role, or the top-level targets role)
    #[arg(long, default_value = "targets")]
    role: String,
    /// Urgent: hosts install it outside their maintenance window too
    #[arg(long)]
    urgent: bool,
    #[command(flatten)]
    deltas: deltas::DeltaArgs,
}

fn add(args: &AddArgs) -> Result<()> {
    let kind: Kind = args.kind.parse()?;
    let info = ContentInfo {
        kind,
        component: args.component.clone(),
        version: args.version.clone(),
        product: args.product.clone(),
        requires_build: args.requires_build.clone(),
        build: args.build.clone(),
        patch_id: args.patch_id.clone(),
        platforms: args.platforms.clone(),
        urgent: args.urgent,
    };
    info.validate()?;
    if !args.file.is_file() {
        bail!("{} is not a readable file", args.file.display());
    }
    let name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", args.file.display()))?;
    let path = info.target_path(name)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mut repo = Repository::open(&args.dir)?;
    let tf = repo.add_target_bytes(&args.role, &path, &bytes, Some(info.to_custom()))?;
    let made = deltas::make_all(&mut repo, &args.role, &info, &path, &bytes, &args.deltas)?;
    repo.save()?;
    println!(
        "staged {path} ({} bytes, sha256 {}) in role {}; run `updraft repo publish {}` to sign it",
        tf.length,
        tf.hashes.get("sha256").map(String::as_str).unwrap_or(""),
        args.role,
        args.dir.display()
    );
    for line in deltas::report(&made) {
        println!("{line}");
    }
    Ok(())
}

pub fn run(cmd: &RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Init {
            dir,
            key_type,
            keys,
            threshold,
        } => init(dir, *key_type, *keys, *threshold),
        RepoCommand::Add(args) => add(args),
        RepoCommand::Remove { dir, target } => remove(dir, target),
        RepoCommand::Publish { dir } => publish(dir),
        RepoCommand::Rotate {
            dir,
            role,
            threshold,
            keys,
            allow_lower_threshold,
        } => {
            let opts = RotateOptions {
                keys: *keys,
                threshold: *threshold,
                allow_lower_threshold: *allow_lower_threshold,
            };
            rotate(dir, role, &opts)
        }
        RepoCommand::Delegate {
            dir,
            name,
            parent,
            paths,
            terminating,
            keys,
            threshold,
        } => {
            let mut repo = Repository::open(dir)?;
            repo.add_delegation(
                parent,
                name,
                Some(paths.clone()),
                None,
                *terminating,
                *keys,
                *threshold,
            )?;
            repo.save()?;
            println!("staged delegation {parent} -> {name} for {paths:?}; run `updraft repo publish` to sign it");
            Ok(())
        }
        RepoCommand::Refresh { dir } => refresh(dir),
        RepoCommand::Status { dir, json } => status(dir, *json),
    }
}

fn init(dir: &Path, key_type: KeyType, keys: usize, threshold: u64) -> Result<()> {
    let opts = InitOptions {
        key_kind: match key_type {
            KeyType::Ed25519 => KeyKind::Ed25519,
            KeyType::Ecdsa => KeyKind::EcdsaP256,
        },
        keys_per_role: keys,
        threshold,
        ..InitOptions::default()
    };
    let repo = Repository::init(dir, &opts)?;
    println!("created repository in {}", dir.display());
    println!(
        "private keys: {} (mode 0600; keep them offline)",
        dir.join("keys").display()
    );
    println!(
        "root to distribute to clients: {}",
        repo.metadata_dir().join("1.root.json").display()
    );
    Ok(())
}

fn remove(dir: &Path, target: &str) -> Result<()> {
    let mut repo = Repository::open(dir)?;
    let role = repo.remove_target(target)?;
    // Deltas that produce it are of no use without it.
    for d in deltas::producing(&repo, target) {
        repo.remove_target(&d)?;
        println!("staged removal of {d} (a delta to {target})");
    }
    repo.save()?;
    println!("staged removal of {target} from {role}; run `updraft repo publish` to sign it");
    Ok(())
}

fn publish(dir: &Path) -> Result<()> {
    let mut repo = Repository::open(dir)?;
    let staged = repo.staged();
    repo.publish()?;
    println!(
        "published: {} snapshot v{}, timestamp v{}",
        if staged.is_empty() {
            "no role changes;".to_string()
        } else {
            format!("{};", staged.join(", "))
        },
        repo.snapshot().version,
        repo.timestamp().version
    );
    Ok(())
}

fn rotate(dir: &Path, role: &str, opts: &RotateOptions) -> Result<()> {
    let mut repo = Repository::open(dir)?;
    let rotation = repo.rotate_with(role, opts)?;
    if rotation.lowered_threshold() {
        eprintln!(
            "warning: {role}: threshold lowered from {} to {} (--allow-lower-threshold); \
             fewer keys now suffice to sign for this role",
            rotation.previous_threshold, rotation.threshold
        );
    }
    println!(
        "rotated {role}: {} new key(s), threshold {} (was {} key(s), threshold {}); root is now v{}",
        rotation.new_keyids.len(),
        rotation.threshold,
        rotation.previous_keys,
        rotation.previous_threshold,
        repo.root().version
    );
    for id in rotation.new_keyids {
        println!("  {id}");
    }
    Ok(())
}

fn refresh(dir: &Path) -> Result<()> {
    let mut repo = Repository::open(dir)?;
    repo.refresh_timestamp()?;
    println!(
        "timestamp v{} expires {}",
        repo.timestamp().version,
        repo.timestamp().expires
    );
    Ok(())
}

fn status(dir: &Path, json: bool) -> Result<()> {
    let repo = Repository::open(dir)?;
    let status = repo.status();
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>7}  {:<22} {:>9}  key ids",
        "role", "version", "expires", "threshold"
    );
    for r in &status.roles {
        let ids: Vec<&str> = r.keyids.iter().map(|k| &k[..k.len().min(12)]).collect();
        println!(
            "{:<24} {:>7}  {:<22} {:>9}  {}",
            r.role,
            r.version,
            r.expires,
            r.threshold,
            ids.join(" ")
        );
    }
    println!("\n{} target(s):", status.targets.len());
    for (path, len, role) in &status.targets {
        println!("  {path}  {len} bytes  ({role})");
    }
    if !status.staged.is_empty() {
        println!("\nstaged, not yet published: {}", status.staged.join(", "));
    }
    Ok(())
}
