//! REST for spokes: enrolment tokens and the list (`admin:spokes`), and
//! the enrolment itself, whose credential is the single-use token in its
//! body.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use paddock_spoke::{Enrolment, SpokeError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ErrorCode, json_body};
use crate::routes::Routes;
use crate::{ApiError, AppState};

/// How long an enrolment token stays good unless the admin says.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The longest an enrolment token may be asked to live.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .bind("GET /api/v1/spokes", list)
        .bind("POST /api/v1/spokes/tokens", mint)
        .bind("DELETE /api/v1/spokes/{name}", revoke)
        .bind("POST /api/v1/spokes/enroll", enroll)
}

impl From<SpokeError> for ApiError {
    fn from(e: SpokeError) -> Self {
        let (status, code) = match &e {
            SpokeError::BadName(_) | SpokeError::Csr(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::Invalid)
            }
            SpokeError::BadToken => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
            SpokeError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            SpokeError::Store(e) => crate::error::store_failure(e),
            SpokeError::Ca(_) | SpokeError::Files(_) | SpokeError::Refused(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError)
            }
        };
        Self::new(status, code, e.to_string())
    }
}

fn enrolment(s: &AppState) -> Result<&Arc<Enrolment>, ApiError> {
    s.spokes.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "spokes are not set up in this paddock",
        )
    })
}

async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "spokes": enrolment(&s)?.list()? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintToken {
    name: String,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

async fn mint(
    State(s): State<AppState>,
    payload: Result<Json<MintToken>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = json_body(payload)?;
    let ttl = match req.ttl_secs {
        None => DEFAULT_TOKEN_TTL,
        Some(0) => return Err(ApiError::bad_request("ttl_secs must be positive")),
        Some(secs) if Duration::from_secs(secs) > MAX_TOKEN_TTL => {
            return Err(ApiError::bad_request(format!(
                "ttl_secs may be at most {} (a week)",
                MAX_TOKEN_TTL.as_secs()
            )));
        }
        Some(secs) => Duration::from_secs(secs),
    };
    let token = enrolment(&s)?.mint(&req.name, ttl)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": req.name, "token": token, "expires_in_secs": ttl.as_secs() })),
    ))
}

async fn revoke(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    enrolment(&s)?.revoke(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enroll {
    token: String,
    /// The spoke's certificate signing request (PEM).
    csr: String,
}

async fn enroll(
    State(s): State<AppState>,
    payload: Result<Json<Enroll>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let req = json_body(payload)?;
    let enrolled = enrolment(&s)?.enrol(&req.token, &req.csr)?;
    tracing::info!(spoke = %enrolled.name, "a spoke enrolled");
    Ok(Json(json!(enrolled)))
}
