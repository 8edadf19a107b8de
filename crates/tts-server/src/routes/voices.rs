//! `GET /v1/voices` and `GET /v1/models`: what the loaded models can speak.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceEntry {
    pub id: String,
    /// The model that speaks it (`piper`, `kokoro`).
    pub model: String,
    pub language: String,
    /// `stock`, `blend` or `cloned`.
    pub kind: String,
    pub sample_rate: u32,
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
    let voices = registry
        .voices()
        .into_iter()
        .map(|voice| {
            let sample_rate = registry
                .resolve(None, &voice.id)
                .map(|m| m.model.sample_rate())
                .unwrap_or_default();
            VoiceEntry {
                model: voice.family,
                language: voice.language,
                kind: serde_json::to_value(voice.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                id: voice.id,
                sample_rate,
            }
        })
        .collect();
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
