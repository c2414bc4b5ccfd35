//! Administrator routes: hosts, groups, advisories, the fleet questions, the audit log.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use super::*;
use crate::db::AuditEntry;

/// `GET /api/v1/groups`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<Group>,
}

/// `GET /api/v1/advisories`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdvisoryList {
    pub advisories: Vec<Advisory>,
}

/// `GET /api/v1/audit`: one page, newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditLog {
    pub audit: Vec<AuditEntry>,
    /// The cursor of the next (older) page (`?after=`), if there is more.
    pub next: Option<String>,
}

type PageQuery = Result<Query<fleet::Page>, axum::extract::rejection::QueryRejection>;

/// The page a query asks for; an unknown parameter is refused by name.
fn page(q: PageQuery) -> Result<fleet::Page, Response> {
    q.map(|Query(p)| p)
        .map_err(|e| bad("query", format!("{e}: use limit and after")))
}

/// The answer to a change that was saved.
#[derive(Debug, Serialize, Deserialize)]
pub struct Saved {
    pub ok: bool,
}

pub(super) async fn list_hosts(
    State(s): State<Arc<AppState>>,
    _: AdminCaller,
    q: Result<Query<fleet::HostFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(f)) = q else {
        return bad("query", "unknown or malformed filter");
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(move || fleet::host_list(&db, &f, off)).await
}

pub(super) async fn host_detail(
    State(s): State<Arc<AppState>>,
    _: AdminCaller,
    Path(id): Path<String>,
    q: PageQuery,
) -> Response {
    let p = match page(q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    match blocking(move || fleet::host_detail(&db, &id, &p, off)).await {
        Ok(Some(v)) => json(StatusCode::OK, &v),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such host"),
        Err(r) => r,
    }
}

pub(super) async fn list_groups(State(s): State<Arc<AppState>>, _: AdminCaller) -> Response {
    let db = s.db.clone();
    answer(move || {
        Ok(GroupList {
            groups: db.groups()?,
        })
    })
    .await
}

pub(super) async fn put_group(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let mut g: Group = match parse(&body) {
        Ok(g) => g,
        Err(r) => return r,
    };
    if !g.name.is_empty() && g.name != name {
        return bad("name", "differs from the path");
    }
    g.name = name;
    let db = s.db.clone();
    answer(move || {
        db.put_group(&g, &format!("admin {admin}"))
            .map(|()| Saved { ok: true })
    })
    .await
}

pub(super) async fn list_advisories(State(s): State<Arc<AppState>>, _: AdminCaller) -> Response {
    let db = s.db.clone();
    answer(move || {
        Ok(AdvisoryList {
            advisories: db.advisories()?,
        })
    })
    .await
}

pub(super) async fn put_advisory(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut a: Advisory = match parse(&body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    a.id = id;
    let db = s.db.clone();
    answer(move || {
        db.put_advisory(&a, &format!("admin {admin}"))
            .map(|()| Saved { ok: true })
    })
    .await
}

pub(super) async fn advisory_hosts(
    State(s): State<Arc<AppState>>,
    _: AdminCaller,
    Path(id): Path<String>,
    q: PageQuery,
) -> Response {
    let p = match page(q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(move || fleet::affected_page(&db, &id, Some(&p), off)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CoverageQuery {
    product: String,
    requires_build: String,
}

pub(super) async fn coverage(
    State(s): State<Arc<AppState>>,
    _: AdminCaller,
    Path(patch_id): Path<String>,
    q: Result<Query<CoverageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return bad("query", "product and requires_build are required");
    };
    let (db, off) = (s.db.clone(), s.offline_after);
    answer(move || fleet::coverage(&db, &patch_id, &q.product, &q.requires_build, off)).await
}

pub(super) async fn upgrade_plan(
    State(s): State<Arc<AppState>>,
    _: AdminCaller,
    body: Bytes,
) -> Response {
    let req: fleet::PlanRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (db, off, build) = (s.db.clone(), s.offline_after, s.manager_build.clone());
    answer(move || fleet::plan(&db, &req, &build, off)).await
}

pub(super) async fn audit(
    State(s): State<Arc<AppState>>,
    _: AdminCaller,
    q: PageQuery,
) -> Response {
    let p = match page(q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || {
        let limit = p.limit()?;
        let mut audit = db.audit_page(p.after_id()?, limit.saturating_add(1))?;
        let more = audit.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        audit.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = more
            .then(|| audit.last().map(|e| e.id.to_string()))
            .flatten();
        Ok(AuditLog { audit, next })
    })
    .await
}
