//! The client's one error type. A server refusal keeps the server's `{"error":{"code","message","field"}}`
//! and HTTP status so callers can branch on `code()` instead of parsing messages.

use std::time::Duration;

use serde::Deserialize;

/// An error reported by the server, over HTTP or inside a stream (SSE `error` event, WebSocket
/// `error` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// HTTP status; `None` when the error arrived inside an already accepted stream.
    pub status: Option<u16>,
    /// Machine-readable code, e.g. `unknown_voice`, `text_too_long`, `overloaded`.
    pub code: String,
    pub message: String,
    /// The request field at fault, when the server names one.
    pub field: Option<String>,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(field) = &self.field {
            write!(f, " (field {field})")?;
        }
        if let Some(status) = self.status {
            write!(f, " [HTTP {status}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("server error {0}")]
    Server(ServerError),
    /// No connection could be made (refused, DNS, TLS) — the request never reached the server.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configured connect or request timeout elapsed.
    #[error("request to {url} timed out")]
    Timeout { url: String },
    /// The connection broke after audio had started reaching the caller; not retried, because the
    /// caller already holds part of the audio.
    #[error("stream interrupted after {bytes} bytes: {reason}")]
    StreamInterrupted { bytes: u64, reason: String },
    /// Any other transport failure.
    #[error("HTTP transport: {0}")]
    Http(#[source] reqwest::Error),
    #[error("WebSocket: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The server sent something this client does not understand.
    #[error("unexpected response: {0}")]
    Protocol(String),
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// The server's error, when the server produced this error.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Self::Server(err) => Some(err),
            _ => None,
        }
    }

    /// The server's error code (`unknown_voice`, `overloaded`, …).
    pub fn code(&self) -> Option<&str> {
        self.server().map(|e| e.code.as_str())
    }

    /// The HTTP status of a server refusal.
    pub fn status(&self) -> Option<u16> {
        self.server().and_then(|e| e.status)
    }

    /// The request field the server named as wrong.
    pub fn field(&self) -> Option<&str> {
        self.server().and_then(|e| e.field.as_deref())
    }

    /// Whether a new attempt may succeed: no connection, or the server asked to come back
    /// later (429, 503).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Server(err) => matches!(err.status, Some(429 | 503)),
            _ => false,
        }
    }

    pub(crate) fn from_reqwest(url: &str, err: reqwest::Error) -> Self {
        if err.is_connect() {
            Self::Connect {
                url: url.to_string(),
                source: Box::new(err),
            }
        } else if err.is_timeout() {
            Self::Timeout {
                url: url.to_string(),
            }
        } else {
            Self::Http(err)
        }
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(err: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(err))
    }
}

/// `{"error": {...}}` as the server sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
}

impl ErrorDetail {
    pub fn into_server_error(
        self,
        status: Option<u16>,
        retry_after: Option<Duration>,
    ) -> ServerError {
        ServerError {
            status,
            code: self.code,
            message: self.message,
            field: self.field,
            retry_after,
        }
    }
}

/// Builds the error of a non-2xx answer. Bodies that are not the server's JSON (a proxy's HTML
/// page) still give a usable error: the code is derived from the status.
pub(crate) fn server_error(status: u16, retry_after: Option<Duration>, body: &[u8]) -> ClientError {
    let err = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => parsed.error.into_server_error(Some(status), retry_after),
        Err(_) => ServerError {
            status: Some(status),
            code: fallback_code(status).to_string(),
            message: String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(500)
                .collect(),
            field: None,
            retry_after,
        },
    };
    ClientError::Server(err)
}

fn fallback_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        413 => "payload_too_large",
        429 => "rate_limited",
        503 => "unavailable",
        504 => "timeout",
        s if s >= 500 => "server_error",
        _ => "http_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_json_error_keeps_code_message_and_field() {
        let body = br#"{"error":{"code":"unknown_voice","message":"unknown voice \"x\"","field":"voice","type":"invalid_request_error","param":"voice"}}"#;
        let err = server_error(400, None, body);
        assert_eq!(err.code(), Some("unknown_voice"));
        assert_eq!(err.field(), Some("voice"));
        assert_eq!(err.status(), Some(400));
        assert!(!err.is_retryable());
    }

    #[test]
    fn non_json_error_body_gets_a_code_from_the_status() {
        let err = server_error(503, Some(Duration::from_secs(2)), b"<html>busy</html>");
        assert_eq!(err.code(), Some("unavailable"));
        assert!(err.is_retryable());
        assert_eq!(
            err.server().and_then(|e| e.retry_after),
            Some(Duration::from_secs(2))
        );
    }
}
