//! The OpenAPI document of the routes.

// Handlers short-circuit with a ready `Response` as the error value.
#![allow(clippy::result_large_err)]

use super::*;

pub(super) async fn openapi(_: AdminCaller) -> Response {
    json(StatusCode::OK, &openapi_document())
}

/// The OpenAPI 3 document for [`ROUTES`].
pub fn openapi_document() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| serde_json::json!({}));
        let security = match r.access {
            Access::Public => serde_json::json!([]),
            _ => serde_json::json!([{"bearer": []}]),
        };
        entry[r.method.as_str().to_lowercase()] = serde_json::json!({
            "summary": r.summary,
            "x-access": r.access,
            "security": security,
            "responses": {"200": {"description": "OK"}, "400": {"description": "Invalid body or query (names the field)"},
                "401": {"description": "Missing or invalid credential"}, "403": {"description": "Credential of the wrong kind, or a role below the route's (x-access)"}, "404": {"description": "Not found"}},
        });
    }
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "Updraft manager", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    })
}
