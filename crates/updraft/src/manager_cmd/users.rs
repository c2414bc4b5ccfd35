//! `updraft admin user …`: console users and their roles (the first admin is created here, on
//! the manager's database; passwords are read from a file or standard input, never from the
//! command line, and stored as argon2id hashes).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use manager::db::UserRole;
use manager::Db;

use super::print;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a console user; the password (12 characters at least) is read from
    /// --password-file, or else from standard input
    Create {
        name: String,
        /// auditor (reads everything), operator (also rollouts, groups, advisories), admin
        /// (also users and tokens)
        #[arg(long)]
        role: UserRole,
        /// File holding the password (its first line)
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Users with their roles
    List,
    /// Disable a user and end their sessions
    Disable { name: String },
    /// Enable a disabled user again
    Enable { name: String },
}

pub fn run(db: &Db, json: bool, c: &UserCmd) -> Result<()> {
    match c {
        UserCmd::Create {
            name,
            role,
            password_file,
        } => {
            let password = read_password(password_file.as_ref())?;
            db.create_user(name, *role, &password, "cli")?;
            println!("user {name} created ({role})");
        }
        UserCmd::List => print(json, &db.users()?, |users| {
            println!("{:<24} {:<9} {:<21} disabled", "user", "role", "created");
            for u in users {
                println!(
                    "{:<24} {:<9} {:<21} {}",
                    u.name, u.role, u.created, u.disabled
                );
            }
        })?,
        UserCmd::Disable { name } => found(db.set_user_disabled(name, true, "cli")?, name)?,
        UserCmd::Enable { name } => found(db.set_user_disabled(name, false, "cli")?, name)?,
    }
    Ok(())
}

fn found(yes: bool, name: &str) -> Result<()> {
    anyhow::ensure!(yes, "no user {name:?}: see `updraft admin user list`");
    println!("user {name} updated");
    Ok(())
}

/// The first line of `file`, or of standard input.
fn read_password(file: Option<&PathBuf>) -> Result<String> {
    let mut text = String::new();
    match file {
        Some(f) => {
            text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        }
        None => {
            std::io::stdin()
                .take(4096)
                .read_to_string(&mut text)
                .context("reading the password from standard input")?;
        }
    }
    Ok(text.lines().next().unwrap_or_default().to_string())
}
