//! A test bed: a repository made by the engine, a product and a module directory, and an agent
//! configuration over them.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use model::protocol::Outcome;
use model::{ContentInfo, Kind};
use tuf::repo::{InitOptions, Repository};

pub const PATTERN: &str = "antimalware.pattern";

pub struct Bed {
    pub tmp: tempfile::TempDir,
    pub repo: Repository,
    /// Extra TOML for the `[[product]]` table (preflight, restart, ...).
    pub product_extra: String,
    /// The configuration's relays (default: the repository).
    pub relays: Vec<String>,
    /// The components of module `antimalware` (default: the pattern).
    pub components: Vec<String>,
}

impl Bed {
    /// A repository with `antimalware.pattern` 18.523.00, a product `scanner` at build 9.5.1514
    /// with one file `bin/scanner`.
    pub fn new() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repository::init(&tmp.path().join("repo"), &InitOptions::default()).unwrap();
        std::fs::create_dir_all(tmp.path().join("opt/bin")).unwrap();
        std::fs::write(tmp.path().join("opt/bin/scanner"), b"scanner 9.5.1514\n").unwrap();
        let mut bed = Bed {
            tmp,
            repo,
            product_extra: String::new(),
            relays: Vec::new(),
            components: vec![PATTERN.into()],
        };
        bed.relays = vec![bed.url()];
        bed.add(PATTERN, "18.523.00", Kind::Pattern, b"pattern 18.523.00");
        bed.repo.publish().unwrap();
        bed
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn state(&self) -> agent::state::StateDir {
        agent::state::StateDir::new(&self.path("state"))
    }

    /// Stage `body` as `content/<component>/<version>/<component>.dat` (publish separately).
    pub fn add(&mut self, component: &str, version: &str, kind: Kind, body: &[u8]) -> String {
        let info = ContentInfo {
            kind,
            component: component.into(),
            version: version.into(),
            product: None,
            requires_build: None,
            build: None,
            patch_id: None,
            platforms: Vec::new(),
            urgent: false,
        };
        let path = info.target_path(&format!("{component}.dat")).unwrap();
        self.repo
            .add_target_bytes("targets", &path, body, Some(info.to_custom()))
            .unwrap();
        path
    }

    /// Publish patch `id` for product `scanner` (a tar of `files`), `requires` → `build`.
    pub fn publish_patch(
        &mut self,
        id: &str,
        requires: &str,
        build: &str,
        files: &[(&str, &[u8])],
    ) {
        let mut tar = tar::Builder::new(Vec::new());
        for (rel, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            tar.append_data(&mut h, rel, *data).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let info = ContentInfo {
            kind: Kind::Patch,
            component: "scanner".into(),
            version: build.into(),
            product: Some("scanner".into()),
            requires_build: Some(requires.into()),
            build: Some(build.into()),
            patch_id: Some(id.into()),
            platforms: Vec::new(),
            urgent: false,
        };
        let path = info.target_path(&format!("{id}.tar")).unwrap();
        self.repo
            .add_target_bytes("targets", &path, &bytes, Some(info.to_custom()))
            .unwrap();
        self.repo.publish().unwrap();
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.repo.dir().display())
    }

    /// The agent's configuration: the repository as its one relay, module `antimalware`
    /// (`antimalware.pattern` into `av/`), product `scanner` (build 9.5.1514 in `opt/`).
    pub fn config_text(&self) -> String {
        let q = |p: &Path| format!("{:?}", p.to_str().unwrap());
        format!(
            "state_dir = {}\ntrusted_root = {}\nrelays = {:?}\npoll_interval = 300\n\
             [[module]]\nname = \"antimalware\"\ncomponents = {:?}\ninstall_dir = {}\n\
             [[product]]\nname = \"scanner\"\nbuild = \"9.5.1514\"\ninstall_dir = {}\n{}\n",
            q(&self.path("state")),
            q(&self.repo.metadata_dir().join("1.root.json")),
            self.relays,
            self.components,
            q(&self.path("av")),
            q(&self.path("opt")),
            self.product_extra,
        )
    }

    pub fn config(&self) -> agent::AgentConfig {
        let file = self.path("agent.toml");
        std::fs::write(&file, self.config_text()).unwrap();
        agent::AgentConfig::load(&file).unwrap()
    }

    /// The agent over the file fetcher.
    pub fn agent(&self) -> agent::Agent {
        self.agent_with(Arc::new(tuf::FileFetcher))
    }

    pub fn agent_with(&self, fetcher: Arc<dyn tuf::Fetcher>) -> agent::Agent {
        agent::Agent::with_fetcher(self.config(), fetcher).unwrap()
    }

    /// What the module directory holds of the pattern.
    pub fn pattern(&self) -> String {
        String::from_utf8(std::fs::read(self.path("av/antimalware.pattern.dat")).unwrap()).unwrap()
    }

    /// Write the manager's policy as the manager link stores it.
    pub fn set_policy(&self, policy: serde_json::Value) {
        std::fs::create_dir_all(self.path("state")).unwrap();
        std::fs::write(self.path("state/policy.json"), policy.to_string()).unwrap();
    }

    /// The hotfix history as (patch id, outcome) pairs.
    pub fn outcomes(&self) -> Vec<(String, String)> {
        self.state()
            .history()
            .unwrap()
            .into_iter()
            .map(|e| (e.patch_id, e.outcome.to_string()))
            .collect()
    }
}

/// A fetcher over the file system that a test steers: URLs starting with a refused prefix fail
/// as an unreachable host would; URLs starting with a tampered prefix serve other bytes; a hook
/// runs once, at the first target download.
#[derive(Default)]
pub struct Steered {
    pub refused: Vec<String>,
    pub tampered: Vec<String>,
    pub on_first_target: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Every URL asked for, in order.
    pub asked: Mutex<Vec<String>>,
}

impl tuf::Fetcher for Steered {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, tuf::FetchError> {
        self.asked.lock().unwrap().push(url.to_string());
        if self.refused.iter().any(|p| url.starts_with(p.as_str())) {
            return Err(tuf::FetchError::Transport {
                url: url.into(),
                reason: "connection refused".into(),
            });
        }
        if self.tampered.iter().any(|p| url.starts_with(p.as_str())) {
            return Ok(Box::new(std::io::Cursor::new(b"tampered".to_vec())));
        }
        if url.contains("/targets/") {
            if let Some(hook) = self.on_first_target.lock().unwrap().take() {
                hook();
            }
        }
        tuf::FileFetcher.fetch(url)
    }
}

/// The spelling of `o` in the history.
pub fn spelled(o: Outcome) -> String {
    o.as_str().to_string()
}
