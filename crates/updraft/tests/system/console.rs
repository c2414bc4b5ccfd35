//! The console in a real browser: Debian's Chromium, headless, driven through chromedriver
//! (WebDriver) against a real `updraft manager` with a small fleet and a rollout. Each role
//! signs in and visits every page; what a page shows is checked against the API; an operator
//! pauses and resumes a rollout by its buttons; an auditor cannot change anything (no buttons,
//! and a forged form post is refused); a cross-site form post changes nothing; the security
//! headers are set; no page logs a browser console error; axe-core finds no serious or critical
//! accessibility violation. Screenshots of every page go to `target/console-screenshots/`.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";
const ROLES: [&str; 3] = ["admin", "operator", "auditor"];

/// A manager with groups, hosts that reported, a rollout, one user per role and an API token.
struct Site {
    _tmp: tempfile::TempDir,
    mgr: Server,
    admin: String,
    rollout: i64,
    host_id: String,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", tmp.path().join("manager.db").display());
    let cli = |args: &[&str]| ok(&[&["admin", "--db", &db][..], args].concat());
    let admin = cli(&["token", "create", "--name", "ops"])
        .trim()
        .to_string();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, PASSWORD).unwrap();
    for role in ROLES {
        cli(&[
            "user",
            "create",
            &format!("{role}-1"),
            "--role",
            role,
            "--password-file",
            pw.to_str().unwrap(),
        ]);
    }
    cli(&[
        "group",
        "put",
        "core",
        "--role",
        "relay",
        "--poll-interval",
        "60",
    ]);
    cli(&["group", "put", "canary", "--poll-interval", "60"]);
    cli(&[
        "group",
        "put",
        "fleet",
        "--poll-interval",
        "60",
        "--window",
        "sat,sun 01:00-05:00 Europe/Berlin",
    ]);
    let log = updraft::launch::Logs::File(tmp.path().join("manager.log"));
    let listen = ["manager", "--db", &db, "--listen", "127.0.0.1:0"];
    let mgr = Server(
        launcher()
            .server(&listen, &[("RUST_LOG", "info")], log)
            .unwrap(),
    );
    let beat = |group: &str, name: &str, role: &str, version: &str| {
        let token = enroll_token(&db, group, None).trim().to_string();
        let v: Value = http()
            .post(format!("{}/api/v1/enroll", mgr.base))
            .bearer_auth(&token)
            .json(&json!({"hostname": name, "role": role}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        // prod-0 trusts an older timestamp, one that runs out within the hour.
        let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        let trust = match name {
            "prod-0" => json!({"root_version": 1, "timestamp_version": 6,
                "timestamp_expires": tuf::metadata::format_expires(soon)}),
            _ => json!({"root_version": 1, "timestamp_version": 7,
                "timestamp_expires": "2099-01-01T00:00:00Z"}),
        };
        let body = json!({"hostname": name, "role": role, "builds": {"updraft": "0.1.0"}, "trust": trust,
            "components": {"antimalware.pattern": version}, "last_result": "ok <b>bold</b>",
            "modules": [{"name": "antimalware", "status": "online",
                         "components": {"antimalware.pattern": version}}]});
        // prod-3 says it follows `latest` with no hold, yet runs the older version.
        let mut body = body;
        if name == "prod-3" {
            body["applied_policy"] = json!({"group": "fleet", "relays": [], "poll_interval": 60,
                "allow_direct": false, "pinned": {}});
        }
        let r = http()
            .post(format!("{}/api/v1/heartbeat", mgr.base))
            .bearer_auth(v["credential"].as_str().unwrap())
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        v["host_id"].as_str().unwrap().to_string()
    };
    beat("core", "relay-core-1", "relay", "18.523.00");
    let host_id = beat("canary", "canary-1", "agent", "18.600.00");
    for i in 0..4 {
        beat("fleet", &format!("prod-{i}"), "agent", "18.523.00");
    }
    let r: Value = http()
        .post(format!("{}/api/v1/rollouts", mgr.base))
        .bearer_auth(&admin)
        .json(
            &json!({"component": "antimalware.pattern", "version": "18.600.00",
            "waves": [{"groups": ["canary"], "share": 100, "soak": 3600}, {"share": 100}]}),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    let a = http()
        .put(format!("{}/api/v1/advisories/UPD-2026-07", mgr.base))
        .bearer_auth(&admin)
        .json(
            &json!({"id": "", "title": "pattern parser bug", "role": "any", "product": "updraft",
            "affected": "<0.2.0", "fixed": "0.2.0"}),
        )
        .send()
        .unwrap();
    assert_eq!(a.status(), 200);
    Site {
        rollout: r["id"].as_i64().unwrap(),
        _tmp: tmp,
        mgr,
        admin,
        host_id,
    }
}

impl Site {
    /// GET an API path as the admin token (from the browser's runtime too: a blocking client
    /// on a thread that may block).
    fn api(&self, path: &str) -> Value {
        let get = || {
            http()
                .get(format!("{}{path}", self.mgr.base))
                .bearer_auth(&self.admin)
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(get),
            Err(_) => get(),
        }
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.mgr.base)
    }
}

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/setup-system.sh installs chromium-driver)");
    let url = format!("http://127.0.0.1:{port}");
    eventually("chromedriver answers", || {
        http().get(format!("{url}/status")).send().map(drop)
    });
    Driver { child, url }
}

async fn browser(d: &Driver) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions"]
        },
        "goog:loggingPrefs": {"browser": "ALL"}
    });
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a Chromium session")
}

/// The browser's console entries since the last call (chromedriver's log endpoint).
async fn console_errors(c: &Client, d: &Driver) -> Vec<String> {
    let id = c.session_id().await.unwrap().unwrap();
    let url = format!("{}/session/{id}/se/log", d.url);
    let v: Value = reqwest::Client::new()
        .post(url)
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["value"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].to_string())
        .collect()
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// axe-core's serious and critical violations on the current page.
async fn accessibility(c: &Client) -> Vec<String> {
    let axe = std::env::var("UPDRAFT_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests-browser/node_modules/axe-core/axe.min.js")
        });
    let source = std::fs::read_to_string(&axe).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/setup-node.sh installs axe-core)",
            axe.display()
        )
    });
    c.execute(&source, vec![]).await.unwrap();
    let result = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations))
                .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
            vec![],
        )
        .await
        .unwrap();
    result
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .map(|v| {
            format!(
                "{}: {} ({} nodes)",
                v["id"],
                v["help"],
                v["nodes"].as_array().map_or(0, Vec::len)
            )
        })
        .collect()
}

/// Wait (bounded, 15 s) until the page at `path` (any, if `None`) shows `css`: the page an
/// action leads to has loaded. Errors while the browser navigates count as "not yet".
async fn arrive_at(c: &Client, path: Option<&str>, css: &str) -> fantoccini::elements::Element {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        let here = c.current_url().await.map(|u| u.path().to_string());
        if here.as_deref().is_ok_and(|h| path.is_none_or(|p| h == p)) {
            match c.find(Locator::Css(css)).await {
                Ok(e) => return e,
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let page = c.source().await.unwrap_or_default();
    let at = c.current_url().await.ok();
    panic!("never arrived at {path:?} showing {css}: {last}; at {at:?}: {page}");
}

/// Wait (bounded: 15 s) until the page at `path` shows `needle` in `css`.
async fn arrive_showing(c: &Client, path: &str, css: &str, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        let here = c.current_url().await.map(|u| u.path().to_string());
        if here.as_deref().is_ok_and(|h| h == path) {
            if let Ok(e) = c.find(Locator::Css(css)).await {
                match e.text().await {
                    Ok(text) if text.contains(needle) => return,
                    Ok(text) => last = text,
                    Err(e) => last = e.to_string(),
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never showed {needle:?} in {css}: {last}");
}

async fn arrive(c: &Client, css: &str) -> fantoccini::elements::Element {
    arrive_at(c, None, css).await
}

async fn sign_out(c: &Client) {
    let button = c.find(Locator::Css("form.signout button")).await.unwrap();
    button.click().await.unwrap();
    arrive_at(c, Some("/console/login"), "#password").await;
}

async fn sign_in(c: &Client, s: &Site, user: &str) {
    c.goto(&s.url("/console/login")).await.unwrap();
    let name = c.find(Locator::Id("name")).await.unwrap();
    name.send_keys(user).await.unwrap();
    let password = c.find(Locator::Id("password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    let submit = c.find(Locator::Css("button[type=submit]")).await.unwrap();
    submit.click().await.unwrap();
    arrive_at(c, Some("/console/"), "form.signout").await;
}

/// Visit `path`: no console error, no serious accessibility violation, a screenshot; its text.
async fn visit(c: &Client, d: &Driver, s: &Site, role: &str, name: &str, path: &str) -> String {
    c.goto(&s.url(path)).await.unwrap();
    let text = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}-{role}.png")), png).unwrap();
    let errors = console_errors(c, d).await;
    assert!(
        errors.is_empty(),
        "{path} as {role}: browser console errors {errors:?}"
    );
    let violations = accessibility(c).await;
    assert!(violations.is_empty(), "{path} as {role}: {violations:#?}");
    text
}

#[test]
fn every_role_sees_every_page_and_only_operators_act() {
    let s = site();
    let d = driver();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&d).await;
        for role in ROLES {
            pages_as(&c, &d, &s, role).await;
        }
        operator_pauses_and_resumes(&c, &s).await;
        operator_enrols_and_revokes(&c, &s).await;
        auditor_cannot_act(&c, &s).await;
        cross_site_post_changes_nothing(&c, &s).await;
        c.close().await.unwrap();
    });
}

async fn pages_as(c: &Client, d: &Driver, s: &Site, role: &str) {
    sign_in(c, s, &format!("{role}-1")).await;
    let hosts = s.api("/api/v1/hosts");
    let overview = visit(c, d, s, role, "overview", "/console/").await;
    assert!(
        overview.contains(&format!("Hosts\n{}", hosts["count"])),
        "{overview}"
    );
    assert!(
        overview.contains("18.600.00") && overview.contains("18.523.00"),
        "{overview}"
    );
    let warnings = [
        "1 online hosts trust an older publication than timestamp v7",
        "1 online hosts trust a timestamp that expires within a day",
        "1 hosts run an older version than their channel asks for",
    ];
    for w in warnings {
        assert!(overview.contains(w), "{w}: {overview}");
    }
    let list = visit(c, d, s, role, "hosts", "/console/hosts").await;
    for h in hosts["hosts"].as_array().unwrap() {
        assert!(list.contains(h["hostname"].as_str().unwrap()), "{list}");
    }
    let host = visit(
        c,
        d,
        s,
        role,
        "host",
        &format!("/console/hosts/{}", s.host_id),
    )
    .await;
    assert!(host.contains("root v1, timestamp v7"), "{host}");
    assert!(
        host.contains("canary-1") && host.contains("ok <b>bold</b>"),
        "shown as reported, escaped: {host}"
    );
    let status = s.api(&format!("/api/v1/rollouts/{}", s.rollout));
    let rollout = visit(
        c,
        d,
        s,
        role,
        "rollout",
        &format!("/console/rollouts/{}", s.rollout),
    )
    .await;
    assert!(
        rollout.contains(status["state"].as_str().unwrap()),
        "{rollout}"
    );
    let has_buttons = c.find(Locator::Css("section.actions button")).await.is_ok();
    assert_eq!(has_buttons, role != "auditor", "{role}: action buttons");
    visit(c, d, s, role, "rollouts", "/console/rollouts").await;
    let relays = visit(c, d, s, role, "relays", "/console/relays").await;
    assert!(
        relays.contains("core") && relays.contains("relay-core-1"),
        "{relays}"
    );
    let groups = visit(c, d, s, role, "groups", "/console/groups").await;
    assert!(groups.contains("Europe/Berlin"), "{groups}");
    let affected = s.api("/api/v1/advisories/UPD-2026-07/hosts");
    visit(c, d, s, role, "advisories", "/console/advisories").await;
    let advisory = visit(c, d, s, role, "advisory", "/console/advisories/UPD-2026-07").await;
    assert!(
        advisory.contains(&format!("{} hosts affected", affected["count"])),
        "{advisory}"
    );
    let coverage = "/console/coverage?patch_id=CP-1&product=updraft&requires_build=%3E%3D0.1.0";
    let cov = visit(c, d, s, role, "coverage", coverage).await;
    assert!(cov.contains("Eligible, without it\n6"), "{cov}");
    let plan = visit(c, d, s, role, "plan", "/console/plan?updraft=0.1.0").await;
    assert!(plan.contains("The manager runs"), "{plan}");
    let tokens = visit(c, d, s, role, "tokens", "/console/tokens").await;
    assert!(tokens.contains("fleet"), "{tokens}");
    let can_create = c
        .find(Locator::Css("form[action='/console/tokens']"))
        .await
        .is_ok();
    assert_eq!(can_create, role != "auditor", "{role}: enrolment form");
    if role == "admin" {
        let users = visit(c, d, s, role, "users", "/console/users").await;
        assert!(
            users.contains("auditor-1") && users.contains("operator"),
            "{users}"
        );
    }
    let audit = visit(c, d, s, role, "audit", "/console/audit").await;
    assert!(
        audit.contains("console-login") && audit.contains(&format!("user {role}-1")),
        "{audit}"
    );
    c.find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.goto(&s.url("/console/")).await.unwrap();
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/console/login",
        "signed out"
    );
}

async fn operator_pauses_and_resumes(c: &Client, s: &Site) {
    sign_in(c, s, "operator-1").await;
    let path = format!("/api/v1/rollouts/{}", s.rollout);
    for (button, state, next) in [
        ("pause", "paused", "resume"),
        ("resume", "running", "pause"),
    ] {
        let page = format!("/console/rollouts/{}", s.rollout);
        c.goto(&s.url(&page)).await.unwrap();
        let form = format!("form[action$='/{button}'] button");
        c.find(Locator::Css(&form))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The page the action leads back to offers the opposite one.
        arrive_at(c, Some(&page), &format!("form[action$='/{next}'] button")).await;
        assert_eq!(s.api(&path)["state"], state, "after {button}");
    }
    let audit = s.api("/api/v1/audit");
    assert!(
        audit.to_string().contains("user operator-1"),
        "audited with the user's name"
    );
    sign_out(c).await;
}

async fn operator_enrols_and_revokes(c: &Client, s: &Site) {
    sign_in(c, s, "operator-1").await;
    c.goto(&s.url("/console/tokens")).await.unwrap();
    let uses = c.find(Locator::Id("t-uses")).await.unwrap();
    uses.send_keys("1").await.unwrap();
    let create = c
        .find(Locator::Css("form[action='/console/tokens'] button"))
        .await
        .unwrap();
    create.click().await.unwrap();
    let token = arrive(c, "section.created code")
        .await
        .text()
        .await
        .unwrap();
    // The token shown once enrols a host, once.
    let enrol = |t: &str| {
        tokio::task::block_in_place(|| {
            http()
                .post(s.url("/api/v1/enroll"))
                .bearer_auth(t)
                .json(&json!({"hostname": "new-1", "role": "agent"}))
                .send()
                .unwrap()
                .status()
        })
    };
    assert_eq!(enrol(&token), 200, "{token}");
    // The host page revokes its credential.
    let hosts = s.api("/api/v1/hosts?group=canary");
    let id = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == "new-1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = format!("/console/hosts/{id}");
    c.goto(&s.url(&page)).await.unwrap();
    let revoke = c
        .find(Locator::Css("form[action$='/revoke'] button"))
        .await
        .unwrap();
    revoke.click().await.unwrap();
    // The answer redirects to the same page: wait for the page that says so (the one before
    // the post may still be there, or go stale while read).
    arrive_showing(c, &page, "main", "Revoked").await;
    let host = s.api(&format!("/api/v1/hosts/{id}"));
    assert!(!host["host"]["revoked"].is_null(), "{host}");
    sign_out(c).await;
}

async fn auditor_cannot_act(c: &Client, s: &Site) {
    sign_in(c, s, "auditor-1").await;
    c.goto(&s.url(&format!("/console/rollouts/{}", s.rollout)))
        .await
        .unwrap();
    // The auditor's own page, with their own CSRF token: a hand-made pause form is refused.
    let csrf = c
        .find(Locator::Css("form.signout input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let script = format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/console/rollouts/{}/pause';
         const i = document.createElement('input'); i.name = 'csrf'; i.value = '{csrf}'; f.appendChild(i);
         document.body.appendChild(f); f.submit();",
        s.rollout
    );
    c.execute(&script, vec![]).await.unwrap();
    let page = arrive(c, "p.error").await.text().await.unwrap();
    assert!(page.contains("needs the operator role"), "{page}");
    assert_eq!(
        s.api(&format!("/api/v1/rollouts/{}", s.rollout))["state"],
        "running"
    );
}

async fn cross_site_post_changes_nothing(c: &Client, s: &Site) {
    // Still signed in (as the auditor; an operator's session would be refused the same way:
    // the cookie is SameSite=Strict and the Origin is not the console's).
    let evil = format!(
        "data:text/html,<form method=post action='{}'><input name=csrf value=guess></form>\
         <script>document.forms[0].submit()</script>",
        s.url(&format!("/console/rollouts/{}/abort", s.rollout))
    );
    c.goto(&evil).await.unwrap();
    // Posted without the session (SameSite=Strict): the console asks to sign in, nothing else.
    arrive_at(c, Some("/console/login"), "#password").await;
    assert_eq!(
        s.api(&format!("/api/v1/rollouts/{}", s.rollout))["state"],
        "running"
    );
}

#[test]
fn console_answers_carry_the_security_headers_and_need_a_session() {
    let s = site();
    for path in [
        "/console/login",
        "/console/",
        "/console/hosts",
        "/console/static/console.css",
    ] {
        let r = http().get(s.url(path)).send().unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    }
    // Without a session every page sends the browser to sign in (the API's 401 stays as it is).
    let r = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(s.url("/console/hosts"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/login");
    // A wrong password: 401, the same answer for an unknown user.
    for user in ["admin-1", "nobody"] {
        let r = http()
            .post(s.url("/console/login"))
            .form(&[("name", user), ("password", "not the password")])
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "{user}");
    }
    // A session cookie is HttpOnly and SameSite=Strict.
    let r = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(s.url("/console/login"))
        .form(&[("name", "admin-1"), ("password", PASSWORD)])
        .send()
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // Even with the session and its CSRF token, a post whose Origin is another site is refused;
    // without the token, from this site, too.
    let session = cookie.split(';').next().unwrap().to_string();
    let page = http()
        .get(s.url("/console/"))
        .header("cookie", &session)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let pause = s.url(&format!("/console/rollouts/{}/pause", s.rollout));
    let post = |origin: &str, token: &str| {
        http()
            .post(&pause)
            .header("cookie", &session)
            .header("origin", origin)
            .form(&[("csrf", token)])
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(post("http://evil.example", csrf), 403);
    assert_eq!(post(s.mgr.base.as_str(), "csrf_guessed"), 403);
    assert_eq!(
        s.api(&format!("/api/v1/rollouts/{}", s.rollout))["state"],
        "running"
    );
    assert_eq!(
        post(s.mgr.base.as_str(), csrf),
        200,
        "the admin's own form, followed to the page"
    );
    assert_eq!(
        s.api(&format!("/api/v1/rollouts/{}", s.rollout))["state"],
        "paused"
    );
}

/// Peak and current resident memory of process `pid`, in KiB (Linux).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn a_flood_of_sign_ins_runs_few_password_hashes_at_once() {
    let s = site();
    let pid = s.mgr.process.id().unwrap();
    let (_, before) = memory_kib(pid);
    // 40 wrong passwords at once, without an account (as an attacker would send them).
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..40)
            .map(|i| {
                let url = s.url("/console/login");
                scope.spawn(move || {
                    http()
                        .post(url)
                        .form(&[
                            ("name", format!("admin-{i}")),
                            ("password", "guess guess guess".into()),
                        ])
                        .send()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|a| [401, 503].contains(a)),
        "{answers:?}"
    );
    // Each argon2id hash takes 19 MiB: 40 at once would add about 760 MiB. A few at a time
    // (one per core) add a small multiple of 19 MiB.
    let (peak, _) = memory_kib(pid);
    let grown = peak.saturating_sub(before) / 1024;
    assert!(
        grown < 250,
        "the manager grew by {grown} MiB under the flood"
    );
    // The real user still signs in.
    let r = http()
        .post(s.url("/console/login"))
        .form(&[("name", "admin-1"), ("password", PASSWORD)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "signed in and led to the overview");
}
