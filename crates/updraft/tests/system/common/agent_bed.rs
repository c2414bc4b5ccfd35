//! The agent test bed: a repository served by `updraft serve`, and an agent's configuration,
//! state, module and product directories under one temporary directory.

use std::path::{Path, PathBuf};

use updraft::launch::{agent_config_toml, AgentSetup, ManagerLink, ModuleSetup, ProductSetup};

use super::{launcher, ok, Repo, Server};

/// An agent test bed: a repository served by `updraft serve`, an agent configuration and its
/// state, module and product directories under one temporary directory.
pub struct AgentBed {
    pub tmp: tempfile::TempDir,
    pub repo: Repo,
    pub origin: Server,
}

/// Options of an agent configuration.
#[derive(Clone)]
pub struct AgentOpts {
    pub relays: Vec<String>,
    pub origin: Option<String>,
    pub allow_direct: bool,
    pub reload: Option<String>,
    pub build: String,
    pub restart: Option<String>,
    pub preflight: Vec<String>,
    /// (manager URL, enrolment token file, hostname)
    pub manager: Option<(String, PathBuf, String)>,
}

impl AgentBed {
    pub fn new() -> AgentBed {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repo::new(tmp.path());
        let origin = Server::start(&repo.dir);
        std::fs::create_dir_all(tmp.path().join("opt/bin")).unwrap();
        std::fs::write(tmp.path().join("opt/bin/scanner"), b"scanner 9.5.1514\n").unwrap();
        std::fs::write(tmp.path().join("opt/scanner.conf"), b"conf\n").unwrap();
        AgentBed { tmp, repo, origin }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn opts(&self) -> AgentOpts {
        AgentOpts {
            relays: vec![self.origin.base.clone()],
            origin: None,
            allow_direct: false,
            reload: None,
            build: "9.5.1514".into(),
            restart: None,
            preflight: Vec::new(),
            manager: None,
        }
    }

    /// Write `agent.toml` and return its path.
    pub fn config(&self, o: &AgentOpts) -> PathBuf {
        let setup = AgentSetup {
            state_dir: self.path("state"),
            trusted_root: self.repo.root_v1.clone(),
            relays: o.relays.clone(),
            origin: o.origin.clone(),
            allow_direct: o.allow_direct,
            poll_interval: Some(300),
            manager: o.manager.clone().map(|(url, token, hostname)| ManagerLink {
                url,
                enroll_token_file: token,
                hostname,
            }),
            modules: vec![ModuleSetup {
                name: "antimalware".into(),
                components: vec!["antimalware.pattern".into()],
                install_dir: self.path("av"),
                reload: o.reload.clone(),
                self_upgrade: false,
            }],
            products: vec![ProductSetup {
                name: "scanner".into(),
                build: o.build.clone(),
                install_dir: self.path("opt"),
                restart: o.restart.clone(),
                preflight: o.preflight.clone(),
            }],
        };
        let path = self.path("agent.toml");
        std::fs::write(&path, agent_config_toml(&setup).unwrap()).unwrap();
        path
    }

    /// Change the agent configuration at `path` as `edit` says (read and written with the
    /// agent's own configuration type, so no key is spelled here).
    pub fn edit_config(&self, path: &Path, edit: impl FnOnce(&mut agent::AgentConfig)) {
        let mut c: agent::AgentConfig =
            toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut c);
        std::fs::write(path, toml::to_string(&c).unwrap()).unwrap();
    }

    /// `updraft agent --once`; the report, or the error output.
    pub fn once(&self, config: &Path) -> Result<serde_json::Value, String> {
        self.once_env(config, &[])
    }

    pub fn once_env(
        &self,
        config: &Path,
        env: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        let out = launcher()
            .command(&["agent", "--config", config.to_str().unwrap(), "--once"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(format!(
                "status {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub fn status(&self, config: &Path) -> serde_json::Value {
        serde_json::from_str(&ok(&[
            "agent",
            "status",
            "--config",
            config.to_str().unwrap(),
            "--json",
        ]))
        .unwrap()
    }

    pub fn history(&self, config: &Path) -> Vec<serde_json::Value> {
        serde_json::from_str(&ok(&[
            "agent",
            "history",
            "--config",
            config.to_str().unwrap(),
            "--json",
        ]))
        .unwrap()
    }

    /// Publish a patch archive (tar, or tar.zst when the name ends in .zst) of `files`
    /// (relative path, content) for product `scanner`.
    pub fn publish_patch(
        &self,
        id: &str,
        version: &str,
        requires: &str,
        build: &str,
        name: &str,
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
        let mut bytes = tar.into_inner().unwrap();
        if name.ends_with(".zst") {
            bytes = ruzstd::encoding::compress_to_vec(
                bytes.as_slice(),
                ruzstd::encoding::CompressionLevel::Fastest,
            );
        }
        let file = self.path(name);
        std::fs::write(&file, bytes).unwrap();
        let d = self.repo.dir.to_str().unwrap();
        ok(&[
            "repo",
            "add",
            d,
            file.to_str().unwrap(),
            "--component",
            "scanner",
            "--version",
            version,
            "--kind",
            "patch",
            "--product",
            "scanner",
            "--requires-build",
            requires,
            "--build",
            build,
            "--patch-id",
            id,
        ]);
        self.repo.publish();
    }
}
