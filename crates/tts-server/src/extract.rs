//! `ApiJson<T>`: a JSON body extractor whose every rejection is a 4xx [`ApiError`] naming the field
//! (axum's own `Json` answers 422 with plain text, which clients cannot act on).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !is_json(&content_type) {
            return Err(ApiError::UnsupportedMediaType(content_type));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        parse(&bytes).map(ApiJson)
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// Deserializes `bytes`, turning serde's error into a code and the JSON path of the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Data => {
                // Missing and unknown fields are reported at the parent path; the name is in the message.
                if let Some(name) = backticked(&message, "missing field `") {
                    ApiError::invalid("missing_field", &name, message)
                } else if let Some(name) = backticked(&message, "unknown field `") {
                    ApiError::invalid("unknown_field", &name, message)
                } else {
                    ApiError::invalid("invalid_field", &path, message)
                }
            }
            _ => ApiError::Invalid {
                code: "malformed_json",
                field: None,
                message,
            },
        }
    })
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        text: String,
        speed: Option<f32>,
    }

    fn field_of(err: ApiError) -> (&'static str, Option<String>) {
        (err.code(), err.field().map(str::to_string))
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse::<Body>(br#"{"text":"hi","speed":"fast"}"#).unwrap_err();
        assert_eq!(field_of(err), ("invalid_field", Some("speed".into())));
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let err = parse::<Body>(br#"{"speed":1.0}"#).unwrap_err();
        assert_eq!(field_of(err), ("missing_field", Some("text".into())));
        let err = parse::<Body>(br#"{"text":"a","fromat":"mp3"}"#).unwrap_err();
        assert_eq!(field_of(err), ("unknown_field", Some("fromat".into())));
    }

    #[test]
    fn syntax_error_is_malformed_json() {
        let err = parse::<Body>(br#"{"text": "#).unwrap_err();
        assert_eq!(field_of(err), ("malformed_json", None));
    }

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
