//! Administrator routes for staged rollouts: start one, list them, read one's per-wave
//! progress, and act on it (pause, resume, approve, abort with or without a rollback).

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use super::*;
use crate::db::rollouts::Action;
use crate::rollout::{Rollout, RolloutSpec};

/// `GET /api/v1/rollouts`: the newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct RolloutList {
    pub rollouts: Vec<Rollout>,
}

fn rollout_id(id: &str) -> Result<i64, Response> {
    id.parse::<i64>()
        .map_err(|_| bad("id", "a rollout id is a number"))
}

pub(super) async fn list(State(s): State<Arc<AppState>>, _: AdminCaller) -> Response {
    let db = s.db.clone();
    answer(move || {
        Ok(RolloutList {
            rollouts: db.rollouts()?,
        })
    })
    .await
}

pub(super) async fn create(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    body: Bytes,
) -> Response {
    let spec: RolloutSpec = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let db = s.db.clone();
    answer(move || db.create_rollout(&spec, &format!("admin {admin}"))).await
}

pub(super) async fn status(
    State(s): State<Arc<AppState>>,
    _: AdminCaller,
    Path(id): Path<String>,
) -> Response {
    let id = match rollout_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let db = s.db.clone();
    match blocking(move || db.rollout_status(id, time::OffsetDateTime::now_utc())).await {
        Ok(Some(v)) => json(StatusCode::OK, &v),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such rollout"),
        Err(r) => r,
    }
}

pub(super) async fn act(
    State(s): State<Arc<AppState>>,
    AdminCaller(admin): AdminCaller,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let id = match rollout_id(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let action: Action = match serde_json::from_value(serde_json::Value::String(action)) {
        Ok(a) => a,
        Err(_) => {
            return bad(
                "action",
                "give pause, resume, approve, abort or abort-and-roll-back",
            )
        }
    };
    let db = s.db.clone();
    answer(move || db.rollout_action(id, action, &format!("admin {admin}"))).await
}
