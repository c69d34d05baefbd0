//! API errors and how PVE renders them.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::validate::ParamErrors;
use crate::http::{self, Resp};

/// Every way a PVE API call can fail. Rendered like pveproxy: the message is the HTTP reason
/// phrase and, for the JSON format, also `message` in the body.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400 with per-parameter messages.
    #[error("Parameter verification failed.")]
    Params(ParamErrors),
    /// 401 from the authentication layer (empty body, message in the status line).
    #[error("{0}")]
    Unauthorized(String),
    /// 401 from an API method itself (e.g. a failed ticket login).
    #[error("{0}")]
    AuthFailure(String),
    /// 403 permission check failure.
    #[error("Permission check failed ({path}, {privilege})")]
    Forbidden { path: String, privilege: String },
    /// 403 with a free message.
    #[error("{0}")]
    ForbiddenMsg(String),
    /// 501 for a path or method the schema does not have.
    #[error("Method '{method} {path}' not implemented")]
    NotImplemented { method: String, path: String },
    /// Anything a handler `die`s with: 500 and the message.
    #[error("{0}")]
    Internal(String),
    /// A fault-injected server error.
    #[error("{0}")]
    Injected(String),
}

impl ApiError {
    pub fn param(name: &str, msg: impl Into<String>) -> Self {
        let mut e = ParamErrors::new();
        e.insert(name.to_string(), msg.into());
        ApiError::Params(e)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        ApiError::Internal(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Params(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::AuthFailure(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::ForbiddenMsg(_) => StatusCode::FORBIDDEN,
            ApiError::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Injected(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Render as pveproxy does for the `json` format.
    pub fn to_response(&self) -> Resp {
        let msg = self.to_string();
        match self {
            ApiError::Unauthorized(m) => http::empty(StatusCode::UNAUTHORIZED, m),
            ApiError::Params(errors) => http::json(
                self.status(),
                Some(&msg),
                &json!({"data": Value::Null, "errors": errors, "message": format!("{msg}\n")}),
            ),
            _ => http::json(
                self.status(),
                Some(&msg),
                &json!({"data": Value::Null, "message": format!("{msg}\n")}),
            ),
        }
    }
}
