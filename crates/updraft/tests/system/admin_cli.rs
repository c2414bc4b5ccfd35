//! `updraft admin` over HTTP with an API token (the real binary against a running manager):
//! the token from a file, the environment or a config file; one group setting changed without
//! wiping the relay list; enrolment tokens listed (a used-up one says so); a revoked host's
//! heartbeats refused; an auditor told which role a change needs; JSON for every command; no
//! database opened unless `--db` names one.
use crate::common::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// `updraft admin --url URL --token-file FILE ARGS…` (with `env` for the child only).
fn admin(url: &str, token_file: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "admin",
        "--url",
        url,
        "--token-file",
        token_file.to_str().unwrap(),
    ];
    all.extend(args);
    launcher().command(&all).output().unwrap()
}

fn admin_ok(url: &str, token_file: &Path, args: &[&str]) -> String {
    let out = admin(url, token_file, args);
    assert!(
        out.status.success(),
        "updraft admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn admin_fails(url: &str, token_file: &Path, args: &[&str]) -> String {
    let out = admin(url, token_file, args);
    assert!(!out.status.success(), "updraft admin {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_of(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn admin_over_http_with_a_token_changes_groups_tokens_and_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", tmp.path().join("manager.db").display());
    // Bootstrap: the first admin token, explicitly on the database.
    let root = ok(&[
        "admin", "--db", &db, "token", "create", "--name", "root", "--role", "admin",
    ]);
    let server = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    let url = server.base.trim_end_matches('/').to_string();
    let file = |name: &str, token: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, format!("{}\n", token.trim())).unwrap();
        p
    };
    let root = file("root.token", &root);
    let token = |name: &str, role: &str| {
        let v = json_of(&admin_ok(
            &url,
            &root,
            &["--json", "token", "create", "--name", name, "--role", role],
        ));
        file(&format!("{name}.token"), v["token"].as_str().unwrap())
    };
    let (op, auditor) = (token("olga", "operator"), token("ada", "auditor"));

    // One setting changes; the relay list and the role stay.
    admin_ok(
        &url,
        &op,
        &[
            "group",
            "put",
            "core",
            "--role",
            "relay",
            "--relay",
            "http://relay-core:8080",
        ],
    );
    admin_ok(
        &url,
        &op,
        &["group", "set", "core", "--poll-interval", "10"],
    );
    let groups = json_of(&admin_ok(&url, &op, &["--json", "group", "list"]));
    assert_eq!(groups[0]["name"], "core");
    assert_eq!(groups[0]["role"], "relay");
    assert_eq!(groups[0]["relays"], json!(["http://relay-core:8080"]));
    assert_eq!(groups[0]["poll_interval"], 10);

    // An auditor reads but is told which role a change needs.
    let err = admin_fails(
        &url,
        &auditor,
        &["group", "set", "core", "--poll-interval", "5"],
    );
    assert!(
        err.contains("403") && err.contains("needs the operator role"),
        "{err}"
    );
    assert!(admin_ok(&url, &auditor, &["group", "list"]).contains("core"));
    let err = admin_fails(&url, &op, &["user", "list"]);
    assert!(err.contains("needs the admin role"), "{err}");

    // Enrolment tokens: listed without the secret; a used-up one says so.
    admin_ok(&url, &op, &["group", "put", "lab"]);
    let t = json_of(&admin_ok(
        &url,
        &op,
        &[
            "--json",
            "enroll-token",
            "create",
            "--group",
            "lab",
            "--uses",
            "1",
        ],
    ));
    let secret = t["token"].as_str().unwrap();
    let enroll = |hostname: &str| {
        http()
            .post(format!("{url}/api/v1/enroll"))
            .bearer_auth(secret)
            .json(&json!({"hostname": hostname, "role": "agent"}))
            .send()
            .unwrap()
    };
    let r = enroll("h1");
    assert_eq!(r.status(), 200);
    let host: serde_json::Value = r.json().unwrap();
    let r = enroll("h2");
    assert_eq!(r.status(), 401);
    assert!(r.text().unwrap().contains("the enrolment token is used up"));
    let list = admin_ok(&url, &op, &["enroll-token", "list"]);
    assert!(
        list.contains("lab") && list.contains("used up") && !list.contains(secret),
        "{list}"
    );
    let list = json_of(&admin_ok(&url, &op, &["--json", "enroll-token", "list"]));
    assert_eq!(
        (&list[0]["uses_left"], &list[0]["state"]),
        (&json!(0), &json!("used up"))
    );

    // A revoked host's heartbeats are refused.
    let (id, cred) = (
        host["host_id"].as_str().unwrap(),
        host["credential"].as_str().unwrap(),
    );
    let beat = || {
        http()
            .post(format!("{url}/api/v1/heartbeat"))
            .bearer_auth(cred)
            .json(&json!({"hostname": "h1", "role": "agent"}))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(beat(), 200);
    let out = json_of(&admin_ok(&url, &op, &["--json", "host", "revoke", id]));
    assert_eq!(out, json!({"ok": true}));
    assert_eq!(beat(), 401);
    let hosts = admin_ok(&url, &auditor, &["hosts"]);
    assert!(hosts.contains("h1 (revoked)"), "{hosts}");
    let err = admin_fails(&url, &op, &["group", "delete", "lab"]);
    assert!(err.contains("1 host(s)"), "{err}");
    admin_ok(&url, &op, &["host", "delete", id]);
    admin_ok(&url, &op, &["group", "delete", "lab"]);

    // The token from the environment, or from a config file next to its token file.
    let out = launcher()
        .command(&["admin", "--json", "group", "list"])
        .env("UPDRAFT_MANAGER", &url)
        .env(
            "UPDRAFT_TOKEN",
            std::fs::read_to_string(&auditor).unwrap().trim(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json_of(&String::from_utf8_lossy(&out.stdout))[0]["name"],
        "core"
    );
    let conf = tmp.path().join("admin.toml");
    std::fs::write(
        &conf,
        format!("url = \"{url}\"\ntoken_file = \"ada.token\"\n"),
    )
    .unwrap();
    let conf_s = conf.to_str().unwrap();
    let out = ok(&["admin", "--config", conf_s, "--json", "group", "list"]);
    assert_eq!(json_of(&out)[0]["name"], "core");
    let err = fails(&["admin", "--config", conf_s, "token", "list"]);
    assert!(err.contains("needs the admin role"), "{err}");

    // A wrong token says so.
    let wrong = file("wrong.token", "upd_admin_wrong");
    let err = admin_fails(&url, &wrong, &["group", "list"]);
    assert!(err.contains("refused the API token (401"), "{err}");

    // Without --url or --db nothing is opened or created.
    let out = Command::new(bin())
        .args(["admin", "group", "list"])
        .current_dir(tmp.path())
        .env_remove("UPDRAFT_MANAGER")
        .env_remove("UPDRAFT_TOKEN")
        .env("HOME", tmp.path())
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--db URL to open the database directly"));
    assert!(!tmp.path().join("updraft-manager.db").exists());

    // Every change was audited with the caller's name.
    let audit = http()
        .get(format!("{url}/api/v1/audit?limit=1000"))
        .bearer_auth(std::fs::read_to_string(&auditor).unwrap().trim())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        audit.contains("admin olga")
            && audit.contains("host-revoke")
            && audit.contains("admin root"),
        "{audit}"
    );
}
