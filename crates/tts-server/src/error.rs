//! The server's one error type and its single mapping to an HTTP status and a JSON body
//! `{"error":{"code","message","field"}}`. Library errors (engine, registry, audio) convert into it
//! here, at the edge, and nowhere else.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tts_models::registry::RegistryError;
use utoipa::ToSchema;

use crate::engine::EngineError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; `field` names the offending JSON field when there is one.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    #[error("unsupported content type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("server is at capacity; retry after {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    #[error("server is not ready (loading or shutting down)")]
    NotReady,
    #[error("synthesis did not finish within the request timeout")]
    Timeout,
    #[error("no such route")]
    NotFound,
    #[error("synthesis failed: {0}")]
    Internal(String),
    /// No API key, or one the server does not know.
    #[error("{0}")]
    Unauthorized(String),
    /// The key is valid but its role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The key's rate limit is spent.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A resource the request needs is not installed on this server (e.g. the Japanese
    /// dictionary): the operator can fix it, the caller cannot, hence 503 rather than 500 or 400.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
}

impl ApiError {
    pub fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Overloaded { .. } | Self::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. } => code,
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Overloaded { .. } => "overloaded",
            Self::NotReady => "not_ready",
            Self::Timeout => "timeout",
            Self::NotFound => "not_found",
            Self::Internal(_) => "internal_error",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { code, .. } => code,
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// Seconds to wait before retrying, for overload and rate limits (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Overloaded { retry_after_secs } | Self::RateLimited { retry_after_secs } => {
                Some((*retry_after_secs).max(1))
            }
            _ => None,
        }
    }

    /// The JSON body, also sent as a WebSocket/SSE error event.
    pub fn body(&self) -> ErrorBody {
        let kind = if self.status().is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                field: self.field().map(str::to_string),
                // OpenAI SDKs read `type` and `param`; they cost nothing to add.
                kind: kind.to_string(),
                param: self.field().map(str::to_string),
            },
        }
    }
}

/// `{"error": {...}}`
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `unknown_voice`, `text_too_long`, `overloaded`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = self.code(), error = %self, "request failed");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        match err {
            RegistryError::UnknownVoice(_) | RegistryError::MixedBlend(_) => {
                Self::invalid("unknown_voice", "voice", err.to_string())
            }
            RegistryError::UnknownModel(_) => {
                Self::invalid("unknown_model", "model", err.to_string())
            }
            RegistryError::VoiceNotInModel { .. } => {
                Self::invalid("voice_model_mismatch", "voice", err.to_string())
            }
            RegistryError::Empty { .. } | RegistryError::Io { .. } => {
                Self::Internal(err.to_string())
            }
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Overloaded { retry_after } => Self::Overloaded {
                retry_after_secs: retry_after.as_secs().max(1),
            },
            EngineError::TimedOut => Self::Timeout,
            EngineError::Stopped | EngineError::Cancelled => Self::NotReady,
            EngineError::Model(tts_models::ModelError::InvalidInput { field, message }) => {
                Self::invalid("invalid_input", field, message)
            }
            EngineError::Model(tts_models::ModelError::UnknownVoice(voice)) => {
                Self::invalid("unknown_voice", "voice", format!("unknown voice {voice:?}"))
            }
            EngineError::Model(tts_models::ModelError::Text(
                err @ tts_text::TextError::JapaneseDictionary(_),
            )) => Self::Unavailable {
                code: "japanese_dictionary_missing",
                message: err.to_string(),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<tts_audio::AudioError> for ApiError {
    fn from(err: tts_audio::AudioError) -> Self {
        Self::Internal(format!("audio: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overloaded_maps_to_503_with_retry_after() {
        let response = ApiError::Overloaded {
            retry_after_secs: 2,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn validation_error_body_names_the_field() {
        let body =
            ApiError::invalid("invalid_speed", "speed", "speed must be within 0.25..=4").body();
        assert_eq!(body.error.code, "invalid_speed");
        assert_eq!(body.error.field.as_deref(), Some("speed"));
        assert_eq!(body.error.kind, "invalid_request_error");
    }

    #[test]
    fn missing_japanese_dictionary_is_503_with_its_own_code() {
        let err = ApiError::from(EngineError::Model(tts_models::ModelError::Text(
            tts_text::TextError::JapaneseDictionary("run scripts/fetch_models.py".into()),
        )));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code(), "japanese_dictionary_missing");
        let body = err.body();
        assert_eq!(body.error.kind, "server_error");
        assert!(
            body.error.message.contains("scripts/fetch_models.py"),
            "{}",
            body.error.message
        );
        // Other text errors stay internal.
        let other = ApiError::from(EngineError::Model(tts_models::ModelError::Weights {
            path: "x".into(),
            message: "y".into(),
        }));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unknown_model_is_a_client_error_on_the_model_field() {
        let err = ApiError::from(RegistryError::UnknownModel("x".into()));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.field(), Some("model"));
    }
}
