//! The manager over real HTTP: every route but /healthz needs a credential (401 without or with a
//! forged one, 403 for a host credential on administrator routes, repeated failures slowed down);
//! enrolment, heartbeats with validation and policy replies, the fleet questions, the audit log.
use crate::common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::path::Path;

struct Mgr {
    server: Server,
    db: String,
    admin: String,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn manager(tmp: &Path, offline_after: &str) -> Mgr {
    manager_with(tmp, offline_after, "100")
}

fn manager_with(tmp: &Path, offline_after: &str, failure_delay_ms: &str) -> Mgr {
    let db = format!("sqlite://{}", s(&tmp.join("manager.db")));
    let admin = ok(&["admin", "--db", &db, "token", "create", "--name", "ops"])
        .trim()
        .to_string();
    let server = Server::spawn(
        &[
            "manager",
            "--db",
            &db,
            "--listen",
            "127.0.0.1:0",
            "--offline-after",
            offline_after,
            "--failure-delay-ms",
            failure_delay_ms,
        ],
        &[],
    );
    Mgr { server, db, admin }
}

impl Mgr {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.server.base)
    }
    fn get(&self, p: &str) -> serde_json::Value {
        let r = http()
            .get(self.url(p))
            .bearer_auth(&self.admin)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{p}");
        serde_json::from_slice(&r.bytes().unwrap()).unwrap()
    }
    fn put(&self, p: &str, body: serde_json::Value) {
        let r = http()
            .put(self.url(p))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{p}: {}", r.text().unwrap());
    }
    fn enroll(&self, group: &str, hostname: &str, role: &str) -> (String, String) {
        let token = enroll_token(&self.db, group, None).trim().to_string();
        let r = http()
            .post(self.url("/api/v1/enroll"))
            .bearer_auth(&token)
            .json(&json!({"hostname": hostname, "role": role}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
        (
            v["host_id"].as_str().unwrap().to_string(),
            v["credential"].as_str().unwrap().to_string(),
        )
    }
    fn beat(&self, cred: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        let r = http()
            .post(self.url("/api/v1/heartbeat"))
            .bearer_auth(cred)
            .json(&body)
            .send()
            .unwrap();
        let st = r.status();
        (
            st,
            serde_json::from_slice(&r.bytes().unwrap()).unwrap_or(serde_json::Value::Null),
        )
    }
}

/// The running binary documents exactly the routes of `manager::api::ROUTES` (the table the
/// router is built from), and every route but /healthz refuses a request without the right
/// credential.
#[test]
fn every_route_but_healthz_requires_the_right_credential() {
    use manager::api::{Access, ROUTES};
    use manager::db::UserRole;
    let tmp = tempfile::tempdir().unwrap();
    // No slow-down here: this test fails authentication on purpose dozens of times.
    let m = manager_with(tmp.path(), "900", "0");
    ok(&["admin", "--db", &m.db, "group", "put", "lab"]);
    let (_, host_cred) = m.enroll("lab", "h1", "agent");
    let token = |role: &str| {
        let t = ok(&[
            "admin", "--db", &m.db, "token", "create", "--name", role, "--role", role,
        ]);
        format!("Bearer {}", t.trim())
    };
    let (auditor, operator) = (token("auditor"), token("operator"));
    let doc = m.get("/api/v1/openapi.json");
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let table: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, table, "{doc:#}");
    assert_eq!(table.len(), ROUTES.len(), "no route is listed twice");
    let c = http();
    for r in ROUTES {
        let (method, path) = (r.method.as_str(), r.path);
        // Every path parameter as "x" (nothing of that name exists).
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let req = |auth: Option<&str>| {
            let b = c.request(method.parse().unwrap(), m.url(&concrete));
            let b = match auth {
                Some(a) => b.header("Authorization", a),
                None => b,
            };
            b.body("{}")
                .header("content-type", "application/json")
                .send()
                .unwrap()
                .status()
        };
        assert_eq!(
            doc["paths"][path][method.to_lowercase()]["x-access"],
            json!(r.access),
            "{method} {path}: documented access"
        );
        if r.access == Access::Public {
            assert_eq!(req(None), 200, "{method} {path}");
            continue;
        }
        assert_eq!(req(None), 401, "{method} {path} without a credential");
        assert_eq!(
            req(Some("Bearer upd_admin_forged0000")),
            401,
            "{method} {path} with a forged credential"
        );
        assert_eq!(
            req(Some("Basic b3BzOm9wcw==")),
            401,
            "{method} {path} with another scheme"
        );
        let Access::Person(need) = r.access else {
            continue;
        };
        assert_eq!(
            req(Some(&format!("Bearer {host_cred}"))),
            403,
            "{method} {path} with a host credential"
        );
        // A person's token of a role below the route's is refused 403 (an operator's on the
        // admin-only routes: users and API tokens); of the role or above, let in.
        let admin = format!("Bearer {}", m.admin);
        for (role, cred) in [
            (UserRole::Auditor, &auditor),
            (UserRole::Operator, &operator),
            (UserRole::Admin, &admin),
        ] {
            let status = req(Some(cred));
            if role < need {
                assert_eq!(status, 403, "{method} {path} as {role}");
            } else {
                assert!(
                    ![401, 403].contains(&status.as_u16()),
                    "{method} {path} as {role}: {status}"
                );
            }
        }
    }
    assert_eq!(
        ROUTES.iter().filter(|r| r.access == Access::Public).count(),
        1,
        "only /healthz is public"
    );
    assert!(
        ROUTES
            .iter()
            .filter(|r| r.path.starts_with("/api/v1/users") || r.path.starts_with("/api/v1/tokens"))
            .all(|r| r.access == Access::Person(UserRole::Admin)),
        "users and API tokens are for admins only"
    );
}

#[test]
fn revoked_tokens_fail_and_repeated_failures_are_slowed_down() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), "900");
    let c = http();
    assert_eq!(
        c.get(m.url("/api/v1/hosts"))
            .bearer_auth(&m.admin)
            .send()
            .unwrap()
            .status(),
        200
    );
    // The scheme is case-insensitive.
    let lower = c
        .get(m.url("/api/v1/hosts"))
        .header("Authorization", format!("bearer {}", m.admin))
        .send()
        .unwrap();
    assert_eq!(lower.status(), 200);
    // A revoked administrator token stops working.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["admin", "--db", &m.db, "--json", "token", "list"])).unwrap();
    let id = list[0]["id"].to_string();
    ok(&["admin", "--db", &m.db, "token", "revoke", &id]);
    assert_eq!(
        c.get(m.url("/api/v1/hosts"))
            .bearer_auth(&m.admin)
            .send()
            .unwrap()
            .status(),
        401
    );
    // Repeated failures from one address are slowed down.
    let t = std::time::Instant::now();
    for _ in 0..10 {
        assert_eq!(
            c.get(m.url("/api/v1/hosts"))
                .bearer_auth("nope")
                .send()
                .unwrap()
                .status(),
            401
        );
    }
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(1000),
        "ten failures took {:?}",
        t.elapsed()
    );
}

#[test]
fn enrolment_heartbeats_policy_and_fleet_questions() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), "900");
    m.put(
        "/api/v1/groups/core",
        json!({"role": "relay", "relays": ["http://relay-core:8080"]}),
    );
    m.put(
        "/api/v1/groups/site-a",
        json!({"role": "relay", "parent": "core", "relays": ["http://relay-a:8080"]}),
    );
    m.put(
        "/api/v1/groups/agents-a",
        json!({"role": "agent", "relays": ["http://relay-a:8080", "http://relay-core:8080"], "poll_interval": 120,
               "allow_direct": true, "pinned": {"antimalware.engine": "12.0.1"}}),
    );
    // A group whose parent is an agent group, or that closes a cycle, is refused with the field.
    let r = http()
        .put(m.url("/api/v1/groups/bad"))
        .bearer_auth(&m.admin)
        .json(&json!({"role": "relay", "parent": "agents-a"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("\"field\": \"parent\""));

    let (core_id, core) = m.enroll("core", "relay-core", "relay");
    let (_, site) = m.enroll("site-a", "relay-a", "relay");
    let (a1_id, a1) = m.enroll("agents-a", "agent-1", "agent");
    let (_, a2) = m.enroll("agents-a", "agent-2", "agent");
    // Enrolment tokens are single-purpose secrets: a wrong one is refused.
    let r = http()
        .post(m.url("/api/v1/enroll"))
        .bearer_auth("upd_enroll_wrong")
        .json(&json!({"hostname": "x", "role": "agent"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    let (st, reply) = m.beat(
        &core,
        json!({"hostname": "relay-core", "role": "relay", "builds": {"updraft": "0.1.0"}}),
    );
    assert_eq!(st, 200);
    assert_eq!(reply["policy"]["group"], "core");
    let (_, reply) = m.beat(&site, json!({"hostname": "relay-a", "role": "relay", "builds": {"updraft": "0.2.0"}, "upstream": "http://relay-core:8080"}));
    assert_eq!(
        reply["policy"]["relays"],
        json!(["http://relay-core:8080"]),
        "a relay group's upstreams are its parent's relays"
    );
    let hist = json!([{"time": "2026-11-23T08:00:00Z", "patch_id": "CP-1519", "product": "scanner", "from_build": "9.5.1514",
        "to_build": "9.5.1519", "outcome": "applied", "message": "ok"}]);
    let (_, reply) = m.beat(&a1, json!({"hostname": "agent-1", "role": "agent", "builds": {"updraft": "0.1.0", "scanner": "9.5.1519"},
        "components": {"antimalware.pattern": "18.523.00"}, "upstream": "http://relay-a:8080", "history": hist,
        "modules": [{"name": "antimalware", "status": "online"}], "last_result": "ok"}));
    assert_eq!(
        reply["policy"],
        json!({"group": "agents-a", "relays": ["http://relay-a:8080", "http://relay-core:8080"],
        "poll_interval": 120, "allow_direct": true, "pinned": {"antimalware.engine": "12.0.1"},
        "decision_lease": 86400})
    );
    m.beat(&a2, json!({"hostname": "agent-2", "role": "agent", "builds": {"updraft": "0.9.0", "scanner": "9.5.1200"}}));

    // Malformed bodies: 400 naming the field.
    for (body, field) in [
        (json!({"role": "agent"}), "hostname"),
        (json!({"hostname": "agent-1", "role": "relay"}), "role"),
        (
            json!({"hostname": "agent-1", "role": "agent", "builds": {"scanner": "nine"}}),
            "builds.scanner",
        ),
        (json!({"hostname": "agent-1", "role": "sensor"}), "role"),
        (
            json!({"hostname": "agent-1", "role": "agent", "modules": [{"name": "m"}]}),
            "modules[0].status",
        ),
        (
            json!({"hostname": "agent-1", "role": "agent", "components": {"Bad Name": "1"}}),
            "components",
        ),
    ] {
        let (st, v) = m.beat(&a1, body);
        assert_eq!(st, 400);
        assert_eq!(v["field"], field, "{v}");
    }
    let big = "x".repeat(300 * 1024);
    let r = http()
        .post(m.url("/api/v1/heartbeat"))
        .bearer_auth(&a1)
        .body(big)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413, "bodies are size-limited");

    // Hosts, filters, detail with history.
    let v = m.get("/api/v1/hosts?role=agent");
    assert_eq!(v["count"], 2);
    let v = m.get("/api/v1/hosts?product=scanner&build_below=9.5.1514");
    assert_eq!(v["hosts"][0]["hostname"], "agent-2");
    let v = m.get("/api/v1/hosts?component=antimalware.pattern&version=18.523.00");
    assert_eq!(v["count"], 1);
    let v = m.get(&format!("/api/v1/hosts/{a1_id}"));
    assert_eq!(v["hotfix_history"][0]["patch_id"], "CP-1519");
    assert_eq!(v["status"], "online");

    // Advisory: relays with an updraft build below 0.2.0 are affected: exactly relay-core.
    m.put("/api/v1/advisories/UPD-2026-01", json!({"id": "", "title": "relay parser bug", "role": "relay", "product": "updraft", "affected": "<0.2.0", "fixed": "0.2.0"}));
    let v = m.get("/api/v1/advisories/UPD-2026-01/hosts");
    assert_eq!(v["count"], 1);
    assert_eq!(v["hosts"][0]["id"], core_id.as_str());

    // Patch coverage.
    let v = m.get("/api/v1/patches/CP-1519/coverage?product=scanner&requires_build=%3E%3D9.5.1514");
    assert_eq!(
        v["counts"],
        json!({"have": 1, "eligible_without": 0, "not_eligible": 1, "unknown": 0})
    );
    assert_eq!(v["have"][0]["id"], a1_id.as_str());
    assert!(v["not_eligible"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("9.5.1200"));

    // Upgrade plan: manager, parent relay group, child relay group, agents; agent-2 violates.
    let r = http()
        .post(m.url("/api/v1/upgrade-plan"))
        .bearer_auth(&m.admin)
        .json(&json!({"targets": {"updraft": "1.0.0"}}))
        .send()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    let what: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        what,
        [
            "manager",
            "relay group core",
            "relay group site-a",
            "agent group agents-a"
        ],
        "{v:#}"
    );
    assert_eq!(v["violations"][0]["hostname"], "agent-2");
    // The CLI answers the same questions.
    let out = ok(&["admin", "--db", &m.db, "advisory", "hosts", "UPD-2026-01"]);
    assert!(
        out.contains("relay-core") && !out.contains("relay-a "),
        "{out}"
    );
    let out = ok(&["admin", "--db", &m.db, "hosts", "--role", "agent"]);
    assert!(
        out.contains("agent-1") && out.contains("antimalware online"),
        "{out}"
    );

    // Administrative changes are audited.
    let audit = m.get("/api/v1/audit").to_string();
    assert!(
        audit.contains("group-put") && audit.contains("advisory-put") && audit.contains("enroll"),
        "{audit}"
    );
}

#[test]
fn hosts_missing_heartbeats_turn_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), "1");
    ok(&["admin", "--db", &m.db, "group", "put", "lab"]);
    let (id, cred) = m.enroll("lab", "quiet", "agent");
    m.beat(&cred, json!({"hostname": "quiet", "role": "agent"}));
    let v = eventually("the quiet host to turn offline", || {
        let v = m.get(&format!("/api/v1/hosts/{id}"));
        if v["status"] == "offline" {
            Ok(v)
        } else {
            Err(v)
        }
    });
    assert!(
        v["host"]["last_seen"].is_string(),
        "offline hosts show when they were last seen: {v}"
    );
    m.beat(&cred, json!({"hostname": "quiet", "role": "agent"}));
    assert_eq!(m.get(&format!("/api/v1/hosts/{id}"))["status"], "online");
}

/// A request with a bearer token and an optional JSON body: status and JSON answer.
fn call(
    m: &Mgr,
    method: &str,
    p: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let b = http()
        .request(method.parse().unwrap(), m.url(p))
        .bearer_auth(token);
    let b = match body {
        Some(v) => b.json(&v),
        None => b,
    };
    let r = b.send().unwrap();
    let st = r.status();
    (
        st,
        serde_json::from_slice(&r.bytes().unwrap()).unwrap_or(serde_json::Value::Null),
    )
}

/// The life of groups, enrolment tokens, hosts, API tokens and users through the API of the
/// running binary: one setting changes without wiping the others, a group in use is not
/// deleted (naming what uses it), a used-up or revoked enrolment token says so, a revoked host's
/// heartbeats are refused, a retry clears the host's rollout failure and reaches the host once,
/// people are managed by admins only, and every change is audited with the caller's name.
#[test]
fn groups_tokens_hosts_and_people_have_a_lifecycle_over_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let m = manager(tmp.path(), "900");
    let admin = m.admin.clone();
    let (st, v) = call(
        &m,
        "POST",
        "/api/v1/tokens",
        &admin,
        Some(json!({"name": "olga", "role": "operator"})),
    );
    assert_eq!(st, 200, "{v}");
    let (op_id, op) = (
        v["id"].as_i64().unwrap(),
        v["token"].as_str().unwrap().to_string(),
    );

    // Groups: one setting changes, the relay list and the role stay.
    m.put(
        "/api/v1/groups/core",
        json!({"role": "relay", "relays": ["http://relay-core:8080"]}),
    );
    let (st, g) = call(
        &m,
        "POST",
        "/api/v1/groups/core/settings",
        &op,
        Some(json!({"poll_interval": 10})),
    );
    assert_eq!(st, 200, "{g}");
    assert_eq!(
        (&g["role"], &g["relays"], &g["poll_interval"]),
        (
            &json!("relay"),
            &json!(["http://relay-core:8080"]),
            &json!(10)
        )
    );
    for (body, field) in [
        (json!({"role": "agent"}), "role"),
        (json!({"poll_interval": 0}), "poll_interval"),
        (json!({"unpin": ["a.pattern"]}), "unpin.a.pattern"),
    ] {
        let (st, v) = call(&m, "POST", "/api/v1/groups/core/settings", &op, Some(body));
        assert_eq!(
            (st, v["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{v}"
        );
    }
    let (st, _) = call(
        &m,
        "POST",
        "/api/v1/groups/nope/settings",
        &op,
        Some(json!({})),
    );
    assert_eq!(st, 404);
    m.put("/api/v1/groups/lab", json!({"role": "agent"}));
    let (_, g) = call(
        &m,
        "POST",
        "/api/v1/groups/lab/settings",
        &op,
        Some(json!({"pin": {"a.pattern": "1"}, "relays": ["http://r:1"]})),
    );
    assert_eq!(
        (&g["pinned"], &g["relays"]),
        (&json!({"a.pattern": "1"}), &json!(["http://r:1"]))
    );

    // Enrolment tokens: listed without the secret; a used-up or revoked one says so.
    let (st, t) = call(
        &m,
        "POST",
        "/api/v1/enroll-tokens",
        &op,
        Some(json!({"group": "lab", "uses": 1})),
    );
    assert_eq!(st, 200, "{t}");
    let token = t["token"].as_str().unwrap().to_string();
    let enroll = |hostname: &str, token: &str| {
        call(
            &m,
            "POST",
            "/api/v1/enroll",
            token,
            Some(json!({"hostname": hostname, "role": "agent"})),
        )
    };
    let (st, e) = enroll("h1", &token);
    assert_eq!(st, 200);
    let (host_id, cred) = (
        e["host_id"].as_str().unwrap().to_string(),
        e["credential"].as_str().unwrap().to_string(),
    );
    let (st, e) = enroll("h2", &token);
    assert_eq!(
        (st, e["error"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("the enrolment token is used up")
        )
    );
    let (_, t2) = call(
        &m,
        "POST",
        "/api/v1/enroll-tokens",
        &op,
        Some(json!({"group": "lab", "expires_days": 1})),
    );
    let t2_id = t2["id"].as_i64().unwrap();
    let (_, list) = call(&m, "GET", "/api/v1/enroll-tokens", &op, None);
    assert!(
        !list.to_string().contains(&token),
        "the secret is never listed"
    );
    assert_eq!(list["tokens"][0]["state"], "used up");
    assert_eq!(list["tokens"][1]["state"], "valid");
    assert!(list["tokens"][1]["expires"].is_string());

    // A group in use is not deleted; what uses it is named.
    let (st, v) = call(&m, "DELETE", "/api/v1/groups/lab", &op, None);
    assert_eq!(st, 400);
    let why = v["error"].as_str().unwrap();
    assert!(
        why.contains("1 host(s)") && why.contains(&format!("enrolment token(s) {t2_id}")),
        "{why}"
    );
    let (st, _) = call(
        &m,
        "DELETE",
        &format!("/api/v1/enroll-tokens/{t2_id}"),
        &op,
        None,
    );
    assert_eq!(st, 200);
    let (st, e) = enroll("h3", t2["token"].as_str().unwrap());
    assert_eq!(
        (st, e["error"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("the enrolment token is revoked")
        )
    );

    // A retry clears the host's failure in a rollout and reaches the host until it says it
    // acted on it; a failure reported after that counts again.
    let (st, g) = call(
        &m,
        "POST",
        "/api/v1/groups/lab/settings",
        &op,
        Some(json!({"unpin": ["a.pattern"]})),
    );
    assert_eq!((st, &g["pinned"]), (StatusCode::OK, &json!({})));
    let modules = json!([{"name": "av", "status": "online", "components": {"a.pattern": "1"}}]);
    let failed =
        json!([{"component": "a.pattern", "version": "2", "reason": "reload failed: exit 1"}]);
    let (st, v) = call(
        &m,
        "POST",
        "/api/v1/rollouts",
        &op,
        Some(json!({"component": "a.pattern", "version": "2",
        "waves": [{"share": 100, "max_failures": 5}], "auto_rollback": false, "silent_after": 900})),
    );
    assert_eq!(st, 200, "{v}");
    let rollout = format!("/api/v1/rollouts/{}", v["id"]);
    let beat = |extra: serde_json::Value| {
        let mut body = json!({"hostname": "h1", "role": "agent", "modules": modules, "components": {"a.pattern": "1"}});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m.beat(&cred, body)
    };
    beat(json!({"failed_versions": failed}));
    let failed_in_rollout = || {
        call(&m, "GET", &rollout, &op, None)
            .1
            .to_string()
            .contains("exit 1")
    };
    assert!(failed_in_rollout());
    let (st, r) = call(
        &m,
        "POST",
        &format!("/api/v1/hosts/{host_id}/retry"),
        &op,
        Some(json!({"component": "a.pattern", "version": "2"})),
    );
    assert_eq!(st, 200, "{r}");
    assert!(!failed_in_rollout(), "the retry clears the host's failure");
    let (_, reply) = beat(json!({"failed_versions": failed}));
    assert_eq!(reply["policy"]["retry"][0]["id"], r["id"], "{reply}");
    assert!(
        !failed_in_rollout(),
        "a failure reported before the host acted on the retry is not counted"
    );
    let (_, reply) = beat(json!({"failed_versions": failed, "applied_policy": reply["policy"]}));
    assert!(
        reply["policy"].get("retry").is_none(),
        "acknowledged: {reply}"
    );
    assert!(failed_in_rollout(), "failing again after the retry counts");
    let (st, _) = call(
        &m,
        "POST",
        "/api/v1/hosts/nope/retry",
        &op,
        Some(json!({"component": "a.pattern", "version": "2"})),
    );
    assert_eq!(st, 404);

    // A revoked host's heartbeats are refused; a deleted host is gone.
    let (st, _) = call(
        &m,
        "POST",
        &format!("/api/v1/hosts/{host_id}/revoke"),
        &op,
        None,
    );
    assert_eq!(st, 200);
    assert_eq!(beat(json!({})).0, StatusCode::UNAUTHORIZED);
    assert!(m.get(&format!("/api/v1/hosts/{host_id}"))["host"]["revoked"].is_string());
    let (st, _) = call(&m, "DELETE", &format!("/api/v1/hosts/{host_id}"), &op, None);
    assert_eq!(st, 200);
    let (st, _) = call(&m, "GET", &format!("/api/v1/hosts/{host_id}"), &op, None);
    assert_eq!(st, 404);
    call(&m, "POST", &format!("{rollout}/abort"), &op, None);
    let (st, v) = call(&m, "DELETE", "/api/v1/groups/lab", &op, None);
    assert_eq!(st, 200, "{v}");
    assert!(!m.get("/api/v1/groups").to_string().contains("\"lab\""));

    // People: admins only, with a message naming the role.
    let (st, v) = call(&m, "GET", "/api/v1/users", &op, None);
    assert_eq!(st, 403);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("needs the admin role"),
        "{v}"
    );
    let (st, v) = call(
        &m,
        "POST",
        "/api/v1/users",
        &admin,
        Some(json!({"name": "ann", "role": "auditor", "password": "correct horse battery"})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &m,
        "POST",
        "/api/v1/users",
        &admin,
        Some(json!({"name": "bob", "role": "auditor", "password": "short"})),
    );
    assert_eq!(
        (st, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("password"))
    );
    assert_eq!(
        call(&m, "POST", "/api/v1/users/ann/disable", &admin, None).0,
        200
    );
    assert_eq!(
        call(&m, "GET", "/api/v1/users", &admin, None).1["users"][0]["disabled"],
        true
    );
    assert_eq!(
        call(&m, "POST", "/api/v1/users/ann/enable", &admin, None).0,
        200
    );
    assert_eq!(
        call(&m, "POST", "/api/v1/users/nobody/enable", &admin, None).0,
        404
    );
    let (_, tokens) = call(&m, "GET", "/api/v1/tokens", &admin, None);
    assert!(
        !tokens.to_string().contains(&op),
        "the secret is never listed"
    );
    assert_eq!(tokens["tokens"][1]["role"], "operator");
    assert_eq!(
        call(
            &m,
            "DELETE",
            &format!("/api/v1/tokens/{op_id}"),
            &admin,
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(&m, "GET", "/api/v1/groups", &op, None).0,
        401,
        "a revoked API token"
    );

    // Every change is audited with the caller's name.
    let audit = m.get("/api/v1/audit?limit=1000").to_string();
    for what in [
        "group-delete",
        "host-revoke",
        "host-delete",
        "host-retry",
        "enroll-token-revoke",
        "user-disable",
        "admin-token-revoke",
    ] {
        assert!(audit.contains(what), "{what}: {audit}");
    }
    assert!(
        audit.contains("admin olga") && audit.contains("admin ops"),
        "{audit}"
    );
}
