//! `GET /v1/voices` and `GET /v1/models`: what the loaded models can speak; and the voice library:
//! `POST /v1/voices` (admin, multipart upload of a sample to clone), `GET /v1/voices/{id}`,
//! `DELETE /v1/voices/{id}` (admin). The pipeline behind them is in [`crate::voice_library`].

use std::collections::BTreeMap;

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tts_voicelib::{VoiceError, VoiceMeta};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::state::AppState;
use crate::voice_library::{CloneError, UploadRequest, BUSY_RETRY, CLONE_MODELS};

#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceEntry {
    pub id: String,
    /// The model that speaks it (`piper`, `kokoro`).
    pub model: String,
    /// Every model that can speak it (cloned voices: `["kokoro"]`).
    pub models: Vec<String>,
    pub language: String,
    /// `stock`, `blend` or `cloned`.
    pub kind: String,
    pub sample_rate: u32,
    /// Display name of an uploaded voice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Creation time (RFC 3339) of an uploaded voice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The mix of a named blend, e.g. `jf_alpha(2)+jm_kumo(1)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blend: Option<String>,
}

/// The routes of this module, with the upload body limit taken from the config.
pub fn routes(state: &AppState) -> Router<AppState> {
    // Room for the text parts around the file; the file's own limit is checked exactly.
    let body_limit = state.voices.limits().max_bytes + 64 * 1024;
    Router::new()
        .route(
            "/v1/voices",
            get(list_voices)
                .post(create_voice)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/v1/voices/{id}", get(get_voice).delete(delete_voice))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceList {
    pub voices: Vec<VoiceEntry>,
    pub default_voice: String,
    /// OpenAI voice names and the voice each one speaks with.
    pub openai_aliases: BTreeMap<String, String>,
}

/// List every voice.
#[utoipa::path(get, path = "/v1/voices", tag = "voices", responses((status = 200, body = VoiceList)))]
pub async fn list_voices(State(state): State<AppState>) -> Json<VoiceList> {
    let registry = state.registry();
    let mut voices: Vec<VoiceEntry> = registry
        .voices()
        .into_iter()
        .map(|voice| {
            let sample_rate = registry
                .resolve(None, &voice.id)
                .map(|m| m.model.sample_rate())
                .unwrap_or_default();
            VoiceEntry {
                models: vec![voice.family.clone()],
                model: voice.family,
                language: voice.language,
                kind: serde_json::to_value(voice.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                id: voice.id,
                sample_rate,
                name: None,
                created: None,
                blend: None,
            }
        })
        .collect();
    voices.extend(state.voices.list().iter().map(cloned_entry));
    voices.extend(state.blends.list().map(blend_entry));
    let openai_aliases = crate::config::OPENAI_VOICES
        .iter()
        .map(|name| (name.to_string(), state.openai_voice(name)))
        .collect();
    Json(VoiceList {
        voices,
        default_voice: state.default_voice.to_string(),
        openai_aliases,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelEntry {
    pub id: String,
    /// Always `model` (OpenAI list shape).
    pub object: &'static str,
    pub owned_by: &'static str,
    pub sample_rate: u32,
    pub voices: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelEntry>,
}

/// List the loaded models (OpenAI list shape).
#[utoipa::path(get, path = "/v1/models", tag = "voices", responses((status = 200, body = ModelList)))]
pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let data = state
        .registry()
        .model_summaries()
        .into_iter()
        .map(|summary| ModelEntry {
            id: summary.id,
            object: "model",
            owned_by: "tts-server",
            sample_rate: summary.sample_rate,
            voices: summary.voices,
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

fn cloned_entry(meta: &VoiceMeta) -> VoiceEntry {
    VoiceEntry {
        id: meta.id.clone(),
        model: CLONE_MODELS[0].to_string(),
        models: meta.models.clone(),
        language: meta.language.clone().unwrap_or_else(|| "und".into()),
        kind: "cloned".into(),
        sample_rate: tts_models::kokoro::SAMPLE_RATE,
        name: Some(meta.name.clone()),
        created: Some(meta.created.clone()),
        blend: None,
    }
}

fn blend_entry(blend: &crate::blends::NamedBlend) -> VoiceEntry {
    VoiceEntry {
        id: blend.id.clone(),
        model: blend.model.clone(),
        models: vec![blend.model.clone()],
        language: blend.language.clone(),
        kind: "blend".into(),
        sample_rate: blend.sample_rate,
        name: None,
        created: None,
        blend: Some(blend.blend.clone()),
    }
}

/// An uploaded voice: its `voice.json` and how it is listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClonedVoice {
    pub id: String,
    pub name: String,
    /// Always `cloned`.
    pub kind: &'static str,
    pub models: Vec<String>,
    pub created: String,
    /// Seconds of the processed sample.
    pub duration: f64,
    /// sha256 of the upload and the fit parameters.
    pub digest: String,
    pub language: Option<String>,
    pub transcript: Option<String>,
    pub consent: bool,
    /// Speaker similarity (cosine of GE2E embeddings) between the sample and the clone's speech.
    pub similarity: f32,
    /// The stock voices the clone started from, with their weights.
    #[schema(value_type = Vec<Object>)]
    pub blend: Vec<tts_voicelib::BlendWeight>,
    /// Speaker embedding of the sample (256 values).
    pub embedding: Vec<f32>,
    #[schema(value_type = Object)]
    pub original: tts_voicelib::OriginalInfo,
}

impl From<VoiceMeta> for ClonedVoice {
    fn from(meta: VoiceMeta) -> Self {
        Self {
            id: meta.id,
            name: meta.name,
            kind: "cloned",
            models: meta.models,
            created: meta.created,
            duration: meta.duration,
            digest: meta.digest,
            language: meta.language,
            transcript: meta.transcript,
            consent: meta.consent,
            similarity: meta.similarity,
            blend: meta.blend,
            embedding: meta.embedding,
            original: meta.original,
        }
    }
}

/// An error answer with any status, in the usual `{"error": …}` shape.
fn error_response(
    status: StatusCode,
    code: &str,
    field: Option<&str>,
    message: impl Into<String>,
) -> Response {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_string(),
            message: message.into(),
            field: field.map(str::to_string),
            kind: kind.to_string(),
            param: field.map(str::to_string),
        },
    };
    (status, Json(body)).into_response()
}

fn clone_error(err: CloneError) -> Response {
    match err {
        CloneError::Voice(VoiceError::TooLarge { .. }) => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            Some("file"),
            err.to_string(),
        ),
        CloneError::Voice(VoiceError::NotFound(_)) => error_response(
            StatusCode::NOT_FOUND,
            "voice_not_found",
            Some("id"),
            err.to_string(),
        ),
        CloneError::Voice(ref voice) if voice.is_bad_upload() => error_response(
            StatusCode::BAD_REQUEST,
            voice.code(),
            voice.field(),
            err.to_string(),
        ),
        // The encoder refuses audio it cannot embed (e.g. no voiced frames): the sample's fault.
        CloneError::Speaker(tts_speaker::SpeakerError::InvalidAudio(_)) => error_response(
            StatusCode::BAD_REQUEST,
            "unusable_audio",
            Some("file"),
            err.to_string(),
        ),
        CloneError::Busy => {
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                None,
                err.to_string(),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY.as_secs()));
            response
        }
        CloneError::NoKokoro => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "cloning_unavailable",
            None,
            err.to_string(),
        ),
        other => {
            tracing::error!(error = %other, "voice operation failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                None,
                other.to_string(),
            )
        }
    }
}

fn multipart_error(err: MultipartError) -> Response {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            Some("file"),
            format!("upload exceeds the size limit: {}", err.body_text()),
        );
    }
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_multipart",
        None,
        format!("malformed multipart body: {}", err.body_text()),
    )
}

fn invalid(code: &'static str, field: &str, message: impl Into<String>) -> Response {
    ApiError::invalid(code, field, message).into_response()
}

/// The text parts and the file of an upload, checked.
async fn read_upload(
    mut multipart: Multipart,
    max_bytes: usize,
) -> Result<UploadRequest, Response> {
    let mut file: Option<Vec<u8>> = None;
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if file.is_some() {
                    return Err(invalid("duplicate_field", "file", "send one file"));
                }
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > max_bytes {
                    return Err(clone_error(CloneError::Voice(VoiceError::TooLarge {
                        size: bytes.len(),
                        limit: max_bytes,
                    })));
                }
                file = Some(bytes.to_vec());
            }
            "name" | "transcript" | "language" | "consent" => {
                let text = field.text().await.map_err(multipart_error)?;
                if texts.insert(name.clone(), text).is_some() {
                    return Err(invalid(
                        "duplicate_field",
                        &name,
                        format!("{name} is given twice"),
                    ));
                }
            }
            other => {
                return Err(invalid(
                    "unknown_field",
                    other,
                    format!(
                    "unknown part {other:?}; expected file, name, transcript, language, consent"
                ),
                ))
            }
        }
    }
    let consent = texts.get("consent").map(|c| c.trim().to_ascii_lowercase());
    if consent.as_deref() != Some("true") {
        return Err(invalid(
            "consent_required",
            "consent",
            "consent must be \"true\": confirm that the speaker agreed to having their voice cloned",
        ));
    }
    let name = texts
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid(
            "invalid_name",
            "name",
            "name is required: 1 to 100 characters, no control characters",
        ));
    }
    let language = match texts.get("language").map(|l| l.trim()) {
        None | Some("") => None,
        Some(tag)
            if tag.len() <= 35
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Some(tag.to_string())
        }
        Some(tag) => {
            return Err(invalid(
                "invalid_language",
                "language",
                format!("{tag:?} is not a language tag such as en-US"),
            ))
        }
    };
    let transcript = texts
        .get("transcript")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if transcript
        .as_ref()
        .is_some_and(|t| t.chars().count() > 5_000)
    {
        return Err(invalid(
            "transcript_too_long",
            "transcript",
            "at most 5000 characters",
        ));
    }
    let bytes = file.ok_or_else(|| invalid("missing_file", "file", "the file part is required"))?;
    if bytes.is_empty() {
        return Err(invalid("empty_file", "file", "the file is empty"));
    }
    Ok(UploadRequest {
        name,
        language,
        transcript,
        bytes,
    })
}

/// Add a voice cloned from a 6–30 s recording (admin; multipart `file`, `name`, `consent=true`,
/// optional `language`, `transcript`).
#[utoipa::path(post, path = "/v1/voices", tag = "voices",
    responses((status = 201, body = ClonedVoice), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn create_voice(
    State(state): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<ClonedVoice>), Response> {
    caller
        .require_admin()
        .map_err(IntoResponse::into_response)?;
    let multipart = multipart.map_err(|rejection| {
        error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
            format!("send multipart/form-data: {}", rejection.body_text()),
        )
    })?;
    let request = read_upload(multipart, state.voices.limits().max_bytes).await?;
    let meta = state
        .voices
        .create(state.speech.engine().clone(), request)
        .await
        .map_err(clone_error)?;
    state.cache.set_voice_digest(&meta.id, &meta.digest);
    tracing::info!(voice = %meta.id, name = %meta.name, "voice added");
    Ok((StatusCode::CREATED, Json(meta.into())))
}

/// One voice: an uploaded voice in full, or a stock voice's listing.
#[utoipa::path(get, path = "/v1/voices/{id}", tag = "voices",
    responses((status = 200, body = ClonedVoice), (status = 404, body = ErrorBody)))]
pub async fn get_voice(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(meta) = state.voices.get(&id) {
        return Json(ClonedVoice::from(meta)).into_response();
    }
    let registry = state.registry();
    if registry.is_stock_voice(&id) {
        if let Some(voice) = registry.voices().into_iter().find(|v| v.id == id) {
            let sample_rate = registry
                .resolve(None, &id)
                .map(|m| m.model.sample_rate())
                .unwrap_or_default();
            return Json(VoiceEntry {
                models: vec![voice.family.clone()],
                model: voice.family,
                language: voice.language,
                kind: "stock".into(),
                sample_rate,
                id: voice.id,
                name: None,
                created: None,
                blend: None,
            })
            .into_response();
        }
    }
    if let Some(blend) = state.blends.get(&id) {
        return Json(blend_entry(blend)).into_response();
    }
    error_response(
        StatusCode::NOT_FOUND,
        "voice_not_found",
        Some("id"),
        format!("no voice {id:?}"),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedVoice {
    pub id: String,
    pub deleted: bool,
    /// Cached audio files of this voice that were removed (the most from any one cache tier).
    pub cache_entries_purged: u64,
}

/// Delete an uploaded voice (admin); its cached audio goes with it.
#[utoipa::path(delete, path = "/v1/voices/{id}", tag = "voices",
    responses((status = 200, body = DeletedVoice), (status = 404, body = ErrorBody)))]
pub async fn delete_voice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeletedVoice>, Response> {
    caller
        .require_admin()
        .map_err(IntoResponse::into_response)?;
    if state.registry().is_stock_voice(&id) {
        return Err(invalid(
            "stock_voice",
            "id",
            format!("{id:?} is a stock voice; only uploaded voices can be deleted"),
        ));
    }
    if state.blends.get(&id).is_some() {
        return Err(invalid(
            "configured_blend",
            "id",
            format!("{id:?} is a blend from the server's config; remove it there"),
        ));
    }
    let meta = state
        .voices
        .delete(state.speech.engine().clone(), id)
        .await
        .map_err(clone_error)?;
    // The voice is gone; a failed purge only leaves unreachable entries behind, so it is logged.
    let purged = match state.cache.purge_voice(&meta.id).await {
        Ok(purged) => purged,
        Err(err) => {
            tracing::warn!(voice = %meta.id, error = %err, "cache purge failed");
            0
        }
    };
    tracing::info!(voice = %meta.id, purged, "voice deleted");
    Ok(Json(DeletedVoice {
        id: meta.id,
        deleted: true,
        cache_entries_purged: purged,
    }))
}
