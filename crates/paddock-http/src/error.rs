//! One error body for every JSON endpoint: `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use paddock_core::CoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: message.into(),
        }
    }
}

/// Status and stable machine-readable code for each core error.
pub(crate) fn classify(e: &CoreError) -> (StatusCode, &'static str) {
    match e {
        CoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        CoreError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
        CoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        CoreError::LimitReached(_) => (StatusCode::TOO_MANY_REQUESTS, "limit_reached"),
        CoreError::EngineUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable"),
        CoreError::Engine(_) => (StatusCode::BAD_GATEWAY, "engine_error"),
        CoreError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
        CoreError::Hook { .. } => (StatusCode::BAD_GATEWAY, "hook_failed"),
        CoreError::Activation(_) => (StatusCode::BAD_GATEWAY, "activation_failed"),
        CoreError::ActivationInvalid => (StatusCode::NOT_FOUND, "activation_invalid"),
        CoreError::ExecTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "exec_timeout"),
        CoreError::Extension(_) => (StatusCode::BAD_GATEWAY, "setup_failed"),
        CoreError::BoxExited(_) => (StatusCode::UNPROCESSABLE_ENTITY, "box_exited"),
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let (status, code) = classify(&e);
        if status.is_server_error() {
            tracing::warn!(code, error = %e, "request failed");
        }
        Self {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
