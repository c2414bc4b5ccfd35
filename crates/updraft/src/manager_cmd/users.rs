//! `updraft admin user …`: console users and their roles (the first admin is created here, with
//! `--db` on the manager's database, later ones over the API; passwords are read from a file or standard input, never from the
//! command line, and stored as argon2id hashes).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use manager::db::{User, UserRole};
use manager::text::escape as esc;

use super::backend::path_method::POST;
use super::backend::{enc, Backend, Saved};
use super::{done, print};

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

pub fn run(b: &Backend, json: bool, c: &UserCmd) -> Result<()> {
    match c {
        UserCmd::Create {
            name,
            role,
            password_file,
        } => {
            let password = read_password(password_file.as_ref())?;
            match b {
                Backend::Db(db) => db.create_user(name, *role, &password, "cli")?,
                Backend::Api(api) => {
                    api.call::<Saved>(
                        POST,
                        "/api/v1/users",
                        Some(
                            &serde_json::json!({"name": name, "role": role, "password": password}),
                        ),
                    )?;
                }
            }
            done(
                json,
                &Saved { ok: true },
                &format!("user {} created ({role})", esc(name)),
            )
        }
        UserCmd::List => {
            let users: Vec<User> = match b {
                Backend::Db(db) => db.users()?,
                Backend::Api(api) => api.get::<super::Listed<_>>("/api/v1/users")?.list,
            };
            print(json, &users, |users| {
                println!("{:<24} {:<9} {:<21} disabled", "user", "role", "created");
                for u in users {
                    println!(
                        "{:<24} {:<9} {:<21} {}",
                        esc(&u.name),
                        u.role,
                        esc(&u.created),
                        u.disabled
                    );
                }
            })
        }
        UserCmd::Disable { name } => set_disabled(b, json, name, true),
        UserCmd::Enable { name } => set_disabled(b, json, name, false),
    }
}

fn set_disabled(b: &Backend, json: bool, name: &str, disabled: bool) -> Result<()> {
    match b {
        Backend::Db(db) => anyhow::ensure!(
            db.set_user_disabled(name, disabled, "cli")?,
            "no user {name:?}: see `updraft admin user list`"
        ),
        Backend::Api(api) => {
            let what = if disabled { "disable" } else { "enable" };
            api.call::<Saved>(
                POST,
                &format!("/api/v1/users/{}/{what}", enc(name)),
                None::<&()>,
            )?;
        }
    }
    done(
        json,
        &Saved { ok: true },
        &format!("user {} updated", esc(name)),
    )
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
