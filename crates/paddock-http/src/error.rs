//! One error body for every JSON endpoint: `{"error": {"code", "message"}}`,
//! and one table of the codes — REST, MCP (a tool error starts with its
//! code) and the event WebSocket all speak it. The clearance varlink socket
//! keeps terok's error names on `org.terok.Clearance1`, so terok's clients
//! work unchanged.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use paddock_core::CoreError;
use serde_json::json;

/// Every error code paddock answers with. Stable: scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    Invalid,
    Conflict,
    LimitReached,
    EngineUnavailable,
    EngineError,
    StoreError,
    /// The store cannot be written now (a full disk, a lock held by
    /// another process); nothing was changed and a retry may succeed.
    StoreUnavailable,
    HookFailed,
    ActivationFailed,
    ActivationInvalid,
    ExecTimeout,
    SetupFailed,
    BoxExited,
    ImageNotFound,
    PullFailed,
    RuntimeNotInstalled,
    WrongState,
    PathNotFound,
    TooLarge,
    PortUnreachable,
    Unauthenticated,
    /// The credential could not be checked (an identity provider down,
    /// slow or garbled): refused, and not known to be bad.
    AuthUnavailable,
    Forbidden,
    EgressDisabled,
    EgressError,
    TokensDisabled,
    UnknownRequest,
    RequestAlreadyEnded,
    VerdictTupleMismatch,
    InvalidAction,
    ApplyFailed,
    /// The client speaks an API version this server does not serve.
    VersionSkew,
    /// The box runs on a spoke this operation does not reach.
    OnSpoke,
    /// The spoke a box is on (or a create names) is not connected.
    SpokeUnreachable,
    /// The spoke failed the call.
    SpokeFailed,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 36] = [
        Self::NotFound,
        Self::Invalid,
        Self::Conflict,
        Self::LimitReached,
        Self::EngineUnavailable,
        Self::EngineError,
        Self::StoreError,
        Self::StoreUnavailable,
        Self::HookFailed,
        Self::ActivationFailed,
        Self::ActivationInvalid,
        Self::ExecTimeout,
        Self::SetupFailed,
        Self::BoxExited,
        Self::ImageNotFound,
        Self::PullFailed,
        Self::RuntimeNotInstalled,
        Self::WrongState,
        Self::PathNotFound,
        Self::TooLarge,
        Self::PortUnreachable,
        Self::Unauthenticated,
        Self::AuthUnavailable,
        Self::Forbidden,
        Self::EgressDisabled,
        Self::EgressError,
        Self::TokensDisabled,
        Self::UnknownRequest,
        Self::RequestAlreadyEnded,
        Self::VerdictTupleMismatch,
        Self::InvalidAction,
        Self::ApplyFailed,
        Self::VersionSkew,
        Self::OnSpoke,
        Self::SpokeUnreachable,
        Self::SpokeFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::LimitReached => "limit_reached",
            Self::EngineUnavailable => "engine_unavailable",
            Self::EngineError => "engine_error",
            Self::StoreError => "store_error",
            Self::StoreUnavailable => "store_unavailable",
            Self::HookFailed => "hook_failed",
            Self::ActivationFailed => "activation_failed",
            Self::ActivationInvalid => "activation_invalid",
            Self::ExecTimeout => "exec_timeout",
            Self::SetupFailed => "setup_failed",
            Self::BoxExited => "box_exited",
            Self::ImageNotFound => "image_not_found",
            Self::RuntimeNotInstalled => "runtime_not_installed",
            Self::PullFailed => "pull_failed",
            Self::WrongState => "wrong_state",
            Self::PathNotFound => "path_not_found",
            Self::TooLarge => "too_large",
            Self::PortUnreachable => "port_unreachable",
            Self::Unauthenticated => "unauthenticated",
            Self::AuthUnavailable => "auth_unavailable",
            Self::Forbidden => "forbidden",
            Self::EgressDisabled => "egress_disabled",
            Self::EgressError => "egress_error",
            Self::TokensDisabled => "tokens_disabled",
            Self::UnknownRequest => "unknown_request",
            Self::RequestAlreadyEnded => "request_already_ended",
            Self::VerdictTupleMismatch => "verdict_tuple_mismatch",
            Self::InvalidAction => "invalid_action",
            Self::ApplyFailed => "apply_failed",
            Self::VersionSkew => "version_skew",
            Self::OnSpoke => "on_spoke",
            Self::SpokeUnreachable => "spoke_unreachable",
            Self::SpokeFailed => "spoke_failed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, message)
    }
}

/// A JSON body, or the `invalid` error saying what is wrong with it.
pub(crate) fn json_body<T>(
    payload: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    payload
        .map(|axum::Json(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Status and stable machine-readable code for each core error.
pub(crate) fn classify(e: &CoreError) -> (StatusCode, ErrorCode) {
    match e {
        CoreError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
        CoreError::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::Invalid),
        CoreError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
        CoreError::LimitReached(_) => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::LimitReached),
        CoreError::EngineUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::EngineUnavailable,
        ),
        CoreError::Engine(_) => (StatusCode::BAD_GATEWAY, ErrorCode::EngineError),
        CoreError::Store(e) => store_failure(e),
        CoreError::Hook { .. } => (StatusCode::BAD_GATEWAY, ErrorCode::HookFailed),
        CoreError::Activation(_) => (StatusCode::BAD_GATEWAY, ErrorCode::ActivationFailed),
        CoreError::ActivationInvalid => (StatusCode::NOT_FOUND, ErrorCode::ActivationInvalid),
        CoreError::ExecTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, ErrorCode::ExecTimeout),
        CoreError::Extension(_) => (StatusCode::BAD_GATEWAY, ErrorCode::SetupFailed),
        CoreError::BoxExited(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::BoxExited),
        CoreError::ImageNotFound(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ImageNotFound),
        CoreError::PullFailed { .. } => (StatusCode::BAD_GATEWAY, ErrorCode::PullFailed),
        CoreError::RuntimeNotInstalled { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RuntimeNotInstalled,
        ),
        CoreError::WrongState { .. } => (StatusCode::CONFLICT, ErrorCode::WrongState),
        CoreError::NoSuchPath(_) => (StatusCode::NOT_FOUND, ErrorCode::PathNotFound),
        CoreError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
        CoreError::OnSpoke { .. } => (StatusCode::CONFLICT, ErrorCode::OnSpoke),
        CoreError::SpokeUnreachable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::SpokeUnreachable)
        }
        CoreError::SpokeFull { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::LimitReached),
        CoreError::Spoke { .. } => (StatusCode::BAD_GATEWAY, ErrorCode::SpokeFailed),
    }
}

/// A store failure as the API answers it: 503 `store_unavailable` when it
/// may pass (a full disk, a lock held elsewhere), else 500 `store_error`.
/// Every surface's error mapping goes through here, so none answers a
/// full disk as a bug.
pub(crate) fn store_failure(e: &paddock_store::StoreError) -> (StatusCode, ErrorCode) {
    if e.unavailable() {
        (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StoreUnavailable)
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let (status, code) = classify(&e);
        if status.is_server_error() {
            tracing::warn!(code = code.as_str(), error = %e, "request failed");
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
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// Every code is snake_case, and the README lists each one.
    #[test]
    fn every_code_is_snake_case_and_documented() {
        let readme = include_str!("../../../README.md");
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not list {name}"
            );
        }
    }
}

#[cfg(test)]
mod store_failures {
    use super::*;
    use paddock_store::StoreError;

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn a_full_disk_or_a_held_lock_is_unavailable_not_a_bug() {
        for code in [
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_IOERR,
        ] {
            assert_eq!(
                store_failure(&sqlite(code)),
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::StoreUnavailable)
            );
            let core: ApiError = CoreError::Store(sqlite(code)).into();
            assert_eq!(core.code, ErrorCode::StoreUnavailable);
        }
        assert_eq!(
            store_failure(&sqlite(rusqlite::ffi::SQLITE_CORRUPT)),
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StoreError)
        );
        assert_eq!(
            store_failure(&StoreError::Corrupt("x".into())).1,
            ErrorCode::StoreError
        );
    }
}
