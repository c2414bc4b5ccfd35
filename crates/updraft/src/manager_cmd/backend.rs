//! Where `updraft admin` sends its work: the manager's HTTP API (with an API token, from any
//! machine), or, for bootstrap only and only when asked with `--db`, the database itself.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use manager::Db;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How `updraft admin` reaches the manager.
#[derive(Args)]
pub struct Connection {
    /// The manager's URL, e.g. https://manager.example:8443 (or `url` in the config file)
    #[arg(long, env = "UPDRAFT_MANAGER", global = true)]
    url: Option<String>,
    /// File holding an API token (its first line) [else UPDRAFT_TOKEN, else `token_file` in
    /// the config file]
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for the manager's TLS besides the system roots (or `ca`
    /// in the config file)
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// TOML file with `url`, `token_file` and `ca` [default: ~/.config/updraft/admin.toml if
    /// it exists]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Bootstrap only: open the manager's database directly instead of calling the API, e.g.
    /// to create the first admin token or user (`--db sqlite:///var/lib/updraft/manager.db`).
    /// Never implied: without it, commands go to --url
    #[arg(long, global = true)]
    db: Option<String>,
}

/// `admin.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    url: Option<String>,
    token_file: Option<PathBuf>,
    ca: Option<PathBuf>,
}

/// The database (bootstrap) or the API.
pub enum Backend {
    Db(Db),
    Api(Api),
}

impl Connection {
    pub fn open(&self) -> Result<Backend> {
        if let Some(url) = &self.db {
            // A mistyped path would otherwise mint tokens or users into a database no manager
            // uses: say when a new one is made.
            if manager::db::sqlite_path(url).is_ok_and(|p| !p.exists()) {
                eprintln!(
                    "note: {url} does not exist yet: creating a new, empty database (bootstrap)"
                );
            }
            let db = Db::open(url).with_context(|| format!("opening the database {url}"))?;
            return Ok(Backend::Db(db));
        }
        let (config, dir) = self.config_file()?;
        let Some(url) = self.url.clone().or(config.url) else {
            bail!(
                "no manager to talk to: give --url URL (or UPDRAFT_MANAGER, or url in ~/.config/updraft/admin.toml) \
                 with an API token, or --db URL to open the database directly (bootstrap: the first admin token or user)"
            );
        };
        let token = match (&self.token_file, std::env::var("UPDRAFT_TOKEN").ok()) {
            (Some(f), _) => read_token(f)?,
            (None, Some(t)) if !t.trim().is_empty() => t.trim().to_string(),
            _ => match config.token_file {
                Some(f) => read_token(&dir.join(f))?,
                None => bail!(
                    "no API token: give --token-file FILE, set UPDRAFT_TOKEN, or token_file in the config file \
                     (create one with `updraft admin token create`)"
                ),
            },
        };
        let ca = self.ca.clone().or(config.ca.map(|c| dir.join(c)));
        Ok(Backend::Api(Api::new(&url, token, ca.as_deref())?))
    }

    /// The config file (given, or the default one if it exists) and its directory.
    fn config_file(&self) -> Result<(ConfigFile, PathBuf)> {
        let path = match &self.config {
            Some(p) => p.clone(),
            None => match default_config() {
                Some(p) if p.is_file() => p,
                _ => return Ok((ConfigFile::default(), PathBuf::from("."))),
            },
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let c: ConfigFile = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok((c, dir))
    }
}

fn default_config() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("updraft").join("admin.toml"))
}

fn read_token(f: &Path) -> Result<String> {
    let text = std::fs::read_to_string(f)
        .with_context(|| format!("reading the API token from {}", f.display()))?;
    let t = text.lines().next().unwrap_or_default().trim().to_string();
    anyhow::ensure!(!t.is_empty(), "{}: no token in its first line", f.display());
    Ok(t)
}

/// The manager's API, called with one API token.
pub struct Api {
    base: String,
    token: String,
    http: transport::HttpFetcher,
}

/// Largest answer read (a page of 1000 hosts fits).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// The API's error answer.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

impl Api {
    fn new(url: &str, token: String, ca: Option<&Path>) -> Result<Api> {
        let base = url.trim_end_matches('/').to_string();
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "--url {url:?}: give http://HOST:PORT or https://HOST:PORT"
        );
        let mut config = transport::HttpConfig {
            request_timeout: std::time::Duration::from_secs(120),
            ..Default::default()
        };
        if let Some(ca) = ca {
            config.extra_root_pem.push(
                std::fs::read(ca).with_context(|| format!("reading the CA {}", ca.display()))?,
            );
        }
        let http = transport::HttpFetcher::new(&config)?;
        Ok(Api { base, token, http })
    }

    /// Call `method path` with an optional JSON body; the answer parsed, or an error that says
    /// what the manager said (a 403 names the role needed).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let body = body.map(serde_json::to_vec).transpose()?;
        let (status, bytes) = self
            .http
            .request_json(method, &url, Some(&self.token), body, MAX_ANSWER)
            .with_context(|| {
                format!(
                    "calling the manager at {}",
                    tuf::fsutil::redact_credentials(&self.base)
                )
            })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).with_context(|| {
                format!("{method} {path}: the manager's answer is not understood")
            });
        }
        let said = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(&bytes)
                    .trim()
                    .chars()
                    .take(300)
                    .collect()
            });
        let said = manager::text::escape(&said).into_owned();
        match status {
            401 => bail!(
                "the manager refused the API token (401: {said}): check --token-file, UPDRAFT_TOKEN or the config file's token_file"
            ),
            403 => bail!("not allowed (403): {said}"),
            400 | 404 | 409 => bail!("{said}"),
            _ => bail!("{method} {path}: the manager answered {status}: {said}"),
        }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(path_method::GET, path, None::<&()>)
    }
}

/// Method names.
pub mod path_method {
    pub const GET: &str = "GET";
    pub const POST: &str = "POST";
    pub const PUT: &str = "PUT";
    pub const DELETE: &str = "DELETE";
}

/// `s` as one URL path segment or query value (everything but unreserved characters
/// percent-encoded).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `?k=v&…` of the pairs whose value is given.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The API's answer to a change without a value of its own.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    pub ok: bool,
}

/// A new secret, shown once.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewSecret {
    pub id: i64,
    pub token: String,
}
