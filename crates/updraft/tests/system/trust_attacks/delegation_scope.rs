//! Delegation scope (issue 9.2): a delegated role signs a target outside the paths delegated to
//! it. `tuf-client download` refused it, but the agent installed it and the relay mirrored it,
//! because their listing skipped the delegation search. Now every consumer sees exactly what a
//! lookup authorises.

use crate::common::*;

const EVIL: &str = "content/antimalware.pattern/99.0.0/antimalware.pattern.dat";

/// `ips-team` is delegated `content/ips.rules/*/*` and signs a rules file (in scope) and an
/// antimalware pattern 99.0.0 (out of scope).
fn delegate_ips_team(repo: &Repo) {
    repo.delegate("ips-team", "content/ips.rules/*/*");
    let d = repo.dir.to_str().unwrap();
    let tmp = repo.dir.parent().unwrap();
    for (component, version, kind, body) in [
        ("ips.rules", "2026.12.1", "rules", &b"team rules"[..]),
        (
            "antimalware.pattern",
            "99.0.0",
            "pattern",
            &b"evil pattern"[..],
        ),
    ] {
        let file = tmp.join(version).join(format!("{component}.dat"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, body).unwrap();
        let f = file.to_str().unwrap();
        let mut args = vec![
            "repo",
            "add",
            d,
            f,
            "--component",
            component,
            "--version",
            version,
        ];
        args.extend(["--kind", kind, "--role", "ips-team"]);
        ok(&args);
    }
    repo.publish();
}

#[test]
fn agent_does_not_install_a_target_outside_its_roles_scope() {
    let bed = AgentBed::new();
    delegate_ips_team(&bed.repo);
    let cfg = bed.config(&bed.opts());
    bed.once(&cfg).unwrap();
    assert_eq!(
        std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
        b"pattern 18.523.00"
    );
    let st = bed.status(&cfg);
    assert_eq!(
        st["modules"][0]["components"]["antimalware.pattern"],
        "18.523.00"
    );
    let ignored = st["ignored"].to_string();
    assert!(
        ignored.contains(EVIL) && ignored.contains("ips-team"),
        "{st:#}"
    );
    // The same answer as the conformance client's lookup.
    let tmp = bed.path("client");
    let err = client_download(
        &tmp.join("md"),
        &bed.repo.root_v1,
        &bed.origin.base,
        EVIL,
        &tmp.join("dl"),
    )
    .unwrap_err();
    assert!(err.contains("not listed"), "{err}");
}

#[test]
fn relay_does_not_mirror_a_target_outside_its_roles_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::new(tmp.path());
    delegate_ips_team(&repo);
    let origin = Server::start(&repo.dir);
    let cache = tmp.path().join("cache");
    relay_once(&[&origin.base], &repo.root_v1, &cache).unwrap();
    let relay = relay_offline(&repo.root_v1, &cache);
    let get = |path: &str| {
        http()
            .get(format!("{}/targets/{path}", relay.base))
            .send()
            .unwrap()
    };
    assert_eq!(get(EVIL).status(), 404);
    let rules = get("content/ips.rules/2026.12.1/ips.rules.dat");
    assert_eq!(rules.status(), 200);
    assert_eq!(rules.bytes().unwrap().as_ref(), b"team rules");
    let st = get_json(&format!("{}/status", relay.base));
    assert!(st.to_string().contains(EVIL), "{st:#}");
    // A bundle exported from the relay does not carry it either.
    let bundle = tmp.path().join("b.tar");
    let c = cache.to_str().unwrap();
    ok(&[
        "relay",
        "export",
        "--cache",
        c,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    let listing = String::from_utf8_lossy(&std::fs::read(&bundle).unwrap()).into_owned();
    assert!(!listing.contains("evil pattern"));
    assert!(listing.contains("team rules"));
}

/// Regression (review of issue 9): a delegate that controls only its own role's metadata
/// delegated to thousands of roles that do not exist, or to 2^32 hash bins, which made the
/// listing fail, so the agent installed nothing at all. Only its own scope is affected now.
#[test]
fn a_hostile_delegate_cannot_stop_the_agent_from_installing_everything_else() {
    let bogus: Vec<_> = (0..20_000)
        .map(|i| {
            serde_json::json!({"name": format!("x{i}"), "keyids": [], "threshold": 1,
                "terminating": false, "paths": ["content/ips.rules/*/*"]})
        })
        .collect();
    let bins = serde_json::json!(
        {"keyids": [], "threshold": 1, "bit_length": 32, "name_prefix": "bin"});
    for delegations in [
        serde_json::json!({"keys": {}, "roles": bogus}),
        serde_json::json!({"keys": {}, "succinct_roles": bins}),
    ] {
        let bed = AgentBed::new();
        delegate_ips_team(&bed.repo);
        bed.repo.add(
            "antimalware.pattern",
            "18.600.00",
            "pattern",
            b"pattern 18.600.00",
        );
        bed.repo.publish();
        bed.repo
            .delegate_publishes("ips-team", |s| s["delegations"] = delegations);
        let cfg = bed.config(&bed.opts());
        bed.once(&cfg).unwrap();
        assert_eq!(
            std::fs::read(bed.path("av/antimalware.pattern.dat")).unwrap(),
            b"pattern 18.600.00"
        );
        let st = bed.status(&cfg);
        assert_eq!(st["last_result"], "ok", "{st:#}");
        // The hostile metadata was the one the agent verified and used.
        let seen = std::fs::read_to_string(bed.path("state/tuf/ips-team.json")).unwrap();
        assert!(
            seen.contains("x19999") || seen.contains("bit_length"),
            "{seen:.200}"
        );
    }
}

/// Diamond delegation through the real agent: `release` is delegated by `team-a` (patterns) and,
/// with `team-b`'s own key, by `team-b` (rules), but only team A's key signed it. Its rules
/// target is reachable only through team B, so the agent must not trust it.
#[test]
fn a_role_signed_for_one_delegator_is_not_trusted_through_another() {
    let bed = AgentBed::new();
    let repo = &bed.repo;
    repo.delegate("team-a", "content/antimalware.pattern/*/*");
    repo.delegate("team-b", "content/ips.rules/*/*");
    let d = repo.dir.to_str().unwrap();
    ok(&[
        "repo",
        "delegate",
        d,
        "--name",
        "release",
        "--parent",
        "team-a",
        "--path",
        "content/antimalware.pattern/*/*",
    ]);
    repo.publish();
    let info = |component: &str, kind: &str| serde_json::json!({"updraft": {"kind": kind, "component": component, "version": "99.0.0"}});
    repo.sign_as(
        "release",
        "content/antimalware.pattern/99.0.0/p.dat",
        info("antimalware.pattern", "pattern"),
        b"p",
    );
    repo.sign_as(
        "release",
        "content/ips.rules/99.0.0/r.dat",
        info("ips.rules", "rules"),
        b"r",
    );
    let top = tuf::repo::Repository::open(&repo.dir).unwrap();
    let delegations = top.targets("targets").unwrap().delegations.clone().unwrap();
    let b = delegations
        .roles
        .iter()
        .flatten()
        .find(|r| r.name == "team-b")
        .unwrap();
    let kid = b.keyids[0].clone();
    let key = serde_json::to_value(&delegations.keys[&kid]).unwrap();
    repo.delegate_publishes("team-b", |s| {
        s["delegations"] = serde_json::json!({"keys": {kid.clone(): key},
            "roles": [{"name": "release", "keyids": [kid], "threshold": 1,
                       "paths": ["content/ips.rules/*/*"], "terminating": false}]});
    });
    let cfg = bed.config(&bed.opts());
    bed.once(&cfg).unwrap();
    assert_eq!(std::fs::read(bed.path("av/p.dat")).unwrap(), b"p");
    let st = bed.status(&cfg);
    let ignored = st["ignored"].to_string();
    assert!(
        ignored.contains("content/ips.rules/99.0.0/r.dat") && ignored.contains("team-b"),
        "{st:#}"
    );
}
