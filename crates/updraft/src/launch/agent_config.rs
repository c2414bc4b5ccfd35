//! An agent configuration file for the demo and the tests, written in one function
//! ([`agent_config_toml`]) from a small description ([`AgentSetup`]). Keys the setup leaves out
//! take the agent's defaults.

use std::fmt::Write as _;
use std::path::PathBuf;

/// What an agent configuration says (the subset the demo and the tests set).
#[derive(Debug, Clone, Default)]
pub struct AgentSetup {
    pub state_dir: PathBuf,
    pub trusted_root: PathBuf,
    pub relays: Vec<String>,
    pub origin: Option<String>,
    pub allow_direct: bool,
    /// Seconds between cycles (the agent's default when `None`).
    pub poll_interval: Option<u64>,
    pub manager: Option<ManagerLink>,
    pub modules: Vec<ModuleSetup>,
    pub products: Vec<ProductSetup>,
}

/// The manager an agent reports to, and how it enrols.
#[derive(Debug, Clone)]
pub struct ManagerLink {
    pub url: String,
    pub enroll_token_file: PathBuf,
    pub hostname: String,
}

/// A `[[module]]`: a consumer of components.
#[derive(Debug, Clone)]
pub struct ModuleSetup {
    pub name: String,
    pub components: Vec<String>,
    pub install_dir: PathBuf,
    pub reload: Option<String>,
}

/// A `[[product]]` that receives patches.
#[derive(Debug, Clone)]
pub struct ProductSetup {
    pub name: String,
    pub build: String,
    pub install_dir: PathBuf,
    pub restart: Option<String>,
    pub preflight: Vec<String>,
}

/// The agent configuration (TOML) that `setup` describes.
pub fn agent_config_toml(setup: &AgentSetup) -> String {
    let mut t = String::new();
    line(&mut t, "state_dir", &path(&setup.state_dir));
    line(&mut t, "trusted_root", &path(&setup.trusted_root));
    line(&mut t, "relays", &list(&setup.relays));
    if let Some(origin) = &setup.origin {
        line(&mut t, "origin", &string(origin));
    }
    line(&mut t, "allow_direct", &setup.allow_direct.to_string());
    if let Some(secs) = setup.poll_interval {
        line(&mut t, "poll_interval", &secs.to_string());
    }
    if let Some(m) = &setup.manager {
        line(&mut t, "manager", &string(&m.url));
        line(&mut t, "enroll_token_file", &path(&m.enroll_token_file));
        line(&mut t, "hostname", &string(&m.hostname));
    }
    for m in &setup.modules {
        t.push_str("\n[[module]]\n");
        line(&mut t, "name", &string(&m.name));
        line(&mut t, "components", &list(&m.components));
        line(&mut t, "install_dir", &path(&m.install_dir));
        if let Some(r) = &m.reload {
            line(&mut t, "reload", &string(r));
        }
    }
    for p in &setup.products {
        product(&mut t, p);
    }
    t
}

fn product(t: &mut String, p: &ProductSetup) {
    t.push_str("\n[[product]]\n");
    line(t, "name", &string(&p.name));
    line(t, "build", &string(&p.build));
    line(t, "install_dir", &path(&p.install_dir));
    if let Some(r) = &p.restart {
        line(t, "restart", &string(r));
    }
    if !p.preflight.is_empty() {
        line(t, "preflight", &list(&p.preflight));
    }
}

fn line(t: &mut String, key: &str, value: &str) {
    let _ = writeln!(t, "{key} = {value}");
}

fn path(p: &std::path::Path) -> String {
    string(&p.to_string_lossy())
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| string(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A TOML basic string.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> AgentSetup {
        AgentSetup {
            state_dir: "/tmp/a \"quoted\" dir/state".into(),
            trusted_root: "/tmp/root.json".into(),
            relays: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
            origin: Some("http://127.0.0.1:3".into()),
            allow_direct: true,
            poll_interval: Some(7),
            manager: Some(ManagerLink {
                url: "http://127.0.0.1:4".into(),
                enroll_token_file: "/tmp/t\\oken".into(),
                hostname: "host-1".into(),
            }),
            modules: vec![ModuleSetup {
                name: "antimalware".into(),
                components: vec!["antimalware.pattern".into()],
                install_dir: "/tmp/av".into(),
                reload: Some("echo 'reload'\tnow".into()),
            }],
            products: vec![ProductSetup {
                name: "scanner".into(),
                build: "9.5.1514".into(),
                install_dir: "/tmp/opt".into(),
                restart: Some("true".into()),
                preflight: vec!["test -e /tmp/gate".into()],
            }],
        }
    }

    #[test]
    fn the_agent_reads_back_what_the_setup_says() {
        let s = setup();
        let c: agent::AgentConfig = toml::from_str(&agent_config_toml(&s)).unwrap();
        assert_eq!(c.state_dir, s.state_dir);
        assert_eq!(c.relays, s.relays);
        assert_eq!(c.origin, s.origin);
        assert!(c.allow_direct);
        assert_eq!(c.poll_interval, 7);
        assert_eq!(
            c.enroll_token_file.as_deref(),
            Some("/tmp/t\\oken".as_ref())
        );
        assert_eq!(c.hostname.as_deref(), Some("host-1"));
        assert_eq!(c.modules[0].reload.as_deref(), Some("echo 'reload'\tnow"));
        assert_eq!(c.modules[0].components, ["antimalware.pattern"]);
        assert_eq!(c.products[0].build.as_deref(), Some("9.5.1514"));
        assert_eq!(c.products[0].preflight, ["test -e /tmp/gate"]);
    }

    #[test]
    fn what_the_setup_leaves_out_takes_the_agents_defaults() {
        let s = AgentSetup {
            poll_interval: None,
            manager: None,
            origin: None,
            ..setup()
        };
        let c: agent::AgentConfig = toml::from_str(&agent_config_toml(&s)).unwrap();
        assert_eq!(c.poll_interval, 300);
        assert!(c.manager.is_none() && c.origin.is_none() && c.hostname.is_none());
    }
}
