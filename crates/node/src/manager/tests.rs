use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use model::protocol::HistoryEntry;

use super::*;

fn policy(relays: &[&str]) -> Policy {
    Policy {
        group: "site".into(),
        relays: relays.iter().map(|r| r.to_string()).collect(),
        poll_interval: 60,
        allow_direct: false,
        pinned: Default::default(),
        ..Default::default()
    }
}

#[cfg(unix)]
#[test]
fn the_identity_file_is_written_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let id = Identity {
        host_id: "h1".into(),
        credential: "secret".into(),
        history_sent: 3,
    };
    save_identity(dir.path(), &id).unwrap();
    let meta = std::fs::metadata(dir.path().join(IDENTITY_FILE)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(identity(dir.path()).unwrap(), Some(id));
}

#[test]
fn a_policy_is_written_only_when_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(POLICY_FILE);
    assert!(save_policy(dir.path(), &policy(&["http://a"])).unwrap());
    // Make the stored file recognisable: an unchanged policy must not rewrite it.
    let marked = serde_json::to_vec(&policy(&["http://a"])).unwrap();
    std::fs::write(&file, &marked).unwrap();
    assert!(!save_policy(dir.path(), &policy(&["http://a"])).unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), marked);
    assert!(save_policy(dir.path(), &policy(&["http://b"])).unwrap());
    assert_eq!(stored_policy(dir.path()), Some(policy(&["http://b"])));
}

#[test]
fn a_missing_token_file_is_named_unless_enrolled() {
    let dir = tempfile::tempdir().unwrap();
    let s = LinkSettings {
        manager: Some("https://manager:8443".into()),
        enroll_token_file: Some("/no/token".into()),
        hostname: None,
    };
    let e = s.validate(dir.path()).unwrap_err().to_string();
    assert!(e.contains("/no/token"), "{e}");
    save_identity(dir.path(), &Identity::default()).unwrap();
    s.validate(dir.path()).unwrap();
    let no_manager = LinkSettings {
        manager: None,
        ..s.clone()
    };
    assert!(no_manager.validate(dir.path()).is_err());
    let bad_url = LinkSettings {
        manager: Some("file:///x".into()),
        ..s
    };
    assert!(bad_url.validate(dir.path()).is_err());
}

/// A manager that answers each request in turn with the next of `replies` (JSON, 200) and
/// hands back the requests' paths and bodies.
fn fake_manager(replies: Vec<String>) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for reply in replies {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut r = BufReader::new(stream);
            let (mut line, mut len) = (String::new(), 0usize);
            r.read_line(&mut line).unwrap();
            let path = line.split(' ').nth(1).unwrap().to_string();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            seen.push((path, String::from_utf8(body).unwrap()));
            let mut s = r.into_inner();
            write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
        }
        seen
    });
    (base, handle)
}

fn entry(id: &str) -> HistoryEntry {
    HistoryEntry {
        time: "2026-01-01T00:00:00Z".into(),
        patch_id: id.into(),
        product: "scanner".into(),
        from_build: "1".into(),
        to_build: "2".into(),
        outcome: model::protocol::Outcome::Applied,
        message: String::new(),
        version: None,
    }
}

#[test]
fn the_link_enrols_acknowledges_history_and_keeps_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok\n").unwrap();
    let reply = serde_json::json!({"policy": policy(&["http://r"]), "future": 1}).to_string();
    let (base, server) = fake_manager(vec![
        r#"{"host_id":"h9","credential":"c9","extra":true}"#.into(),
        reply.clone(),
        reply,
    ]);
    let settings = LinkSettings {
        manager: Some(base),
        enroll_token_file: Some(token),
        hostname: Some("relay-1".into()),
    };
    let client = crate::HttpSettings::default().client().unwrap();
    let mut link = ManagerLink::open(&settings, dir.path(), Role::Relay, client).unwrap();
    assert_eq!(link.policy(), None);
    assert_eq!(link.history_sent().unwrap(), 0);
    let mut hb = Heartbeat {
        hostname: link.hostname().into(),
        role: Role::Relay,
        upstream: None,
        builds: Default::default(),
        components: Default::default(),
        modules: Vec::new(),
        history: vec![entry("CP-1"), entry("CP-2")],
        last_result: Some("ok".into()),
        applied_policy: None,
        failed_versions: Vec::new(),
        trust: None,
    };
    assert!(link.heartbeat(&hb).unwrap(), "a first policy is a change");
    assert_eq!(link.policy(), Some(policy(&["http://r"])));
    assert_eq!(link.history_sent().unwrap(), 2);
    assert_eq!(identity(dir.path()).unwrap().unwrap().history_sent, 2);
    hb.history.clear();
    assert!(
        !link.heartbeat(&hb).unwrap(),
        "the same policy again is no change"
    );
    let seen = server.join().unwrap();
    assert_eq!(seen[0].0, model::protocol::ENROLL_PATH);
    let enrol: serde_json::Value = serde_json::from_str(&seen[0].1).unwrap();
    assert_eq!(
        enrol,
        serde_json::json!({"hostname": "relay-1", "role": "relay"})
    );
    assert_eq!(seen[1].0, model::protocol::HEARTBEAT_PATH);
    let sent: Heartbeat = serde_json::from_str(&seen[1].1).unwrap();
    assert_eq!(sent.history.len(), 2);
}

/// Regression: a heartbeat the manager answered 200 with a JSON object is recorded there, even
/// when this build cannot read the policy in the answer (a field missing). Its history entries
/// count as acknowledged, or every later heartbeat would send them again and the manager would
/// record them again each time. An answer that is not JSON at all (a proxy's page) acknowledges
/// nothing.
#[test]
fn history_recorded_by_the_manager_is_acknowledged_even_when_the_policy_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    save_identity(
        dir.path(),
        &Identity {
            host_id: "h1".into(),
            credential: "c1".into(),
            history_sent: 0,
        },
    )
    .unwrap();
    let (base, server) = fake_manager(vec![
        "<html>not the manager</html>".into(),
        r#"{"policy":{"group":"site","relays":[]}}"#.into(),
    ]);
    let settings = LinkSettings {
        manager: Some(base),
        enroll_token_file: None,
        hostname: Some("agent-1".into()),
    };
    let client = crate::HttpSettings::default().client().unwrap();
    let mut link = ManagerLink::open(&settings, dir.path(), Role::Agent, client).unwrap();
    let hb = Heartbeat {
        hostname: link.hostname().into(),
        role: Role::Agent,
        upstream: None,
        builds: Default::default(),
        components: Default::default(),
        modules: Vec::new(),
        history: vec![entry("CP-1"), entry("CP-2")],
        last_result: Some("ok".into()),
        applied_policy: None,
        failed_versions: Vec::new(),
        trust: None,
    };
    assert!(link.heartbeat(&hb).is_err(), "not a manager's answer");
    assert_eq!(link.history_sent().unwrap(), 0, "nothing acknowledged");
    let e = link.heartbeat(&hb).unwrap_err().to_string();
    assert!(
        e.contains("poll_interval"),
        "the unreadable field is named: {e}"
    );
    assert_eq!(link.history_sent().unwrap(), 2, "recorded by the manager");
    assert_eq!(identity(dir.path()).unwrap().unwrap().history_sent, 2);
    assert_eq!(link.policy(), None, "an unreadable policy is not kept");
    assert_eq!(server.join().unwrap().len(), 2);
}
