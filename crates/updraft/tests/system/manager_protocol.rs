//! The manager protocol across versions, against the real `updraft manager`: a heartbeat from a
//! newer ("future") host with fields this build does not know is accepted, answered with its
//! group's policy and recorded; a heartbeat missing a field this build needs is refused with 400
//! naming the field, and records nothing.

use crate::common::*;
use serde_json::{json, Value};

struct Mgr {
    _server: Server,
    base: String,
    db: String,
    admin: String,
}

fn manager(tmp: &std::path::Path) -> Mgr {
    let db = format!("sqlite://{}", tmp.join("manager.db").to_str().unwrap());
    let admin = ok(&["admin", "--db", &db, "token", "create"])
        .trim()
        .to_string();
    ok(&[
        "admin",
        "--db",
        &db,
        "group",
        "put",
        "branch",
        "--relay",
        "https://relay-a.example:8443",
        "--relay",
        "https://relay-b.example:8443",
        "--poll-interval",
        "45",
        "--allow-direct",
        "--pin",
        "antimalware.engine=12.0.1",
    ]);
    let server = Server::spawn(&["manager", "--db", &db, "--listen", "127.0.0.1:0"], &[]);
    Mgr {
        base: server.base.clone(),
        _server: server,
        db,
        admin,
    }
}

impl Mgr {
    /// Enrol a host of group `branch` over HTTP; its id and credential.
    fn enroll(&self, hostname: &str) -> (String, String) {
        let token = enroll_token(&self.db, "branch", None).trim().to_string();
        let r = http()
            .post(format!("{}/api/v1/enroll", self.base))
            .bearer_auth(&token)
            .json(&json!({"hostname": hostname, "role": "agent", "enrolled_by": "a future installer"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        (
            v["host_id"].as_str().unwrap().to_string(),
            v["credential"].as_str().unwrap().to_string(),
        )
    }

    fn beat(&self, cred: &str, body: &Value) -> (u16, Value) {
        let r = http()
            .post(format!("{}/api/v1/heartbeat", self.base))
            .bearer_auth(cred)
            .json(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }

    fn host(&self, id: &str) -> Value {
        let r = http()
            .get(format!("{}/api/v1/hosts/{id}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    }
}

#[test]
fn a_heartbeat_from_a_future_host_gets_its_policy_and_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path());
    let (id, cred) = m.enroll("future-1");
    let body = json!({
        "hostname": "future-1",
        "role": "agent",
        "protocol": 7,
        "hardware": {"cpus": 64, "tpm": true},
        "upstream": "https://relay-a.example:8443",
        "builds": {"updraft": "0.9.0", "scanner": "9.6.2000"},
        "components": {"antimalware.pattern": "18.600.00"},
        "modules": [{"name": "antimalware", "status": "degraded", "reason": "warming up",
                     "components": {"antimalware.pattern": "18.600.00"}, "cpu_ms": 12}],
        "history": [{"time": "2031-01-02T03:04:05Z", "patch_id": "CP-2001", "product": "scanner",
                     "from_build": "9.6.1999", "to_build": "9.6.2000", "outcome": "deferred",
                     "message": "waits for a maintenance window", "window": "sunday"}],
        "last_result": "ok",
        "applied_policy": {"group": "branch", "relays": ["https://relay-a.example:8443"],
                           "poll_interval": 45, "allow_direct": true, "pinned": {},
                           "waves": 3},
    });
    let (status, reply) = m.beat(&cred, &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({"policy": {
            "group": "branch",
            "relays": ["https://relay-a.example:8443", "https://relay-b.example:8443"],
            "poll_interval": 45,
            "allow_direct": true,
            "pinned": {"antimalware.engine": "12.0.1"},
            "decision_lease": 86400,
        }})
    );

    // The record holds what the host sent that this build knows, and nothing else.
    let v = m.host(&id);
    let host = &v["host"];
    assert_eq!(v["status"], "online");
    assert_eq!(host["hostname"], "future-1");
    assert_eq!(host["upstream"], "https://relay-a.example:8443");
    assert_eq!(
        host["builds"],
        json!({"updraft": "0.9.0", "scanner": "9.6.2000"})
    );
    assert_eq!(
        host["components"],
        json!({"antimalware.pattern": "18.600.00"})
    );
    assert_eq!(
        host["modules"],
        json!([{"name": "antimalware", "status": "degraded", "reason": "warming up",
                "components": {"antimalware.pattern": "18.600.00"}}])
    );
    assert_eq!(
        host["applied_policy"],
        json!({"group": "branch", "relays": ["https://relay-a.example:8443"],
               "poll_interval": 45, "allow_direct": true, "pinned": {}})
    );
    assert_eq!(host["last_result"], "ok");
    assert!(host.get("protocol").is_none() && host.get("hardware").is_none());
    let mut history = v["hotfix_history"].clone();
    assert!(
        history[0]["id"].is_i64(),
        "each entry has its cursor: {history}"
    );
    history[0].as_object_mut().unwrap().remove("id");
    assert_eq!(
        history,
        json!([{"time": "2031-01-02T03:04:05Z", "patch_id": "CP-2001", "product": "scanner",
                "from_build": "9.6.1999", "to_build": "9.6.2000", "outcome": "deferred",
                "message": "waits for a maintenance window"}])
    );
}

#[test]
fn a_heartbeat_missing_a_required_field_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path());
    let (id, cred) = m.enroll("old-1");
    let entry = json!({"time": "t", "product": "scanner", "from_build": "1", "to_build": "2",
                       "outcome": "applied", "message": ""});
    for (body, field) in [
        (json!({"hostname": "old-1"}), "role"),
        (json!({"role": "agent"}), "hostname"),
        (
            json!({"hostname": "old-1", "role": "agent", "history": [entry]}),
            "history[0].patch_id",
        ),
        (
            json!({"hostname": "old-1", "role": "agent",
                   "applied_policy": {"group": "g", "relays": [], "poll_interval": 1, "pinned": {}}}),
            "applied_policy.allow_direct",
        ),
    ] {
        let (status, v) = m.beat(&cred, &body);
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["field"], field, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains(field.rsplit('.').next().unwrap()),
            "the message names the field: {v}"
        );
    }
    let v = m.host(&id);
    assert!(v["host"]["last_seen"].is_null(), "nothing recorded: {v}");
    assert_eq!(v["hotfix_history"], json!([]));
}
