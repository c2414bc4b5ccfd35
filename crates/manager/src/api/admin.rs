//! Administrator routes: hosts, groups, advisories, the fleet questions, the audit log.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use super::*;

pub(super) async fn list_hosts(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    q: Result<Query<fleet::HostFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    admin!(s, peer, headers);
    let Ok(Query(f)) = q else {
        return bad("query", "unknown or malformed filter");
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(
        move || fleet::hosts(&db, &f, off),
        |h| serde_json::json!({"count": h.len(), "hosts": h}),
    )
    .await
}

pub(super) async fn host_detail(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin!(s, peer, headers);
    let (db, off) = (s.db.clone(), s.offline_after);
    let r = blocking(move || {
        let h = db.host(&id)?;
        let hist: Vec<HistoryEntry> = db
            .history(Some(&id), None)?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        Ok(h.map(|h| {
            let status = if fleet::online(&h, off) {
                "online"
            } else {
                "offline"
            };
            serde_json::json!({"host": h, "status": status, "hotfix_history": hist})
        }))
    })
    .await;
    match r {
        Ok(Some(v)) => json(StatusCode::OK, v),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such host"),
        Err(r) => r,
    }
}

pub(super) async fn list_groups(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    admin!(s, peer, headers);
    let db = s.db.clone();
    answer(move || db.groups(), |g| serde_json::json!({"groups": g})).await
}

pub(super) async fn put_group(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let admin = admin!(s, peer, headers);
    let mut g: Group = match parse(&body) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !g.name.is_empty() && g.name != name {
        return bad("name", "differs from the path");
    }
    g.name = name;
    let db = s.db.clone();
    answer(
        move || db.put_group(&g, &format!("admin {admin}")),
        |_| serde_json::json!({"ok": true}),
    )
    .await
}

pub(super) async fn list_advisories(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    admin!(s, peer, headers);
    let db = s.db.clone();
    answer(
        move || db.advisories(),
        |a| serde_json::json!({"advisories": a}),
    )
    .await
}

pub(super) async fn put_advisory(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let admin = admin!(s, peer, headers);
    let mut a: Advisory = match parse(&body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    a.id = id;
    let db = s.db.clone();
    answer(
        move || db.put_advisory(&a, &format!("admin {admin}")),
        |_| serde_json::json!({"ok": true}),
    )
    .await
}

pub(super) async fn advisory_hosts(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin!(s, peer, headers);
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(move || fleet::affected(&db, &id, off), |v| v).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CoverageQuery {
    product: String,
    requires_build: String,
}

pub(super) async fn coverage(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(patch_id): Path<String>,
    q: Result<Query<CoverageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    admin!(s, peer, headers);
    let Ok(Query(q)) = q else {
        return bad("query", "product and requires_build are required");
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(
        move || fleet::coverage(&db, &patch_id, &q.product, &q.requires_build, off),
        |v| v,
    )
    .await
}

pub(super) async fn upgrade_plan(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    admin!(s, peer, headers);
    let req: fleet::PlanRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (db, off, build) = (s.db.clone(), s.offline_after, s.manager_build.clone());
    answer(move || fleet::plan(&db, &req, &build, off), |v| v).await
}

pub(super) async fn audit(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
    admin!(s, peer, headers);
    let db = s.db.clone();
    answer(
        move || db.audit_log(1000),
        |v| serde_json::json!({"audit": v}),
    )
    .await
}
