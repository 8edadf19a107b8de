//! The generated OpenAPI document (`GET /openapi.json`), from the handlers' `#[utoipa::path]`.

use utoipa::OpenApi;

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{health, openai, sse, stream, tts, voices, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tts-server",
        description = "Neural text-to-speech: REST, chunked streaming, SSE, WebSocket and an OpenAI-compatible API"
    ),
    paths(
        tts::synthesize,
        stream::stream,
        sse::sse,
        ws::websocket,
        openai::speech,
        voices::list_voices,
        voices::list_models,
        voices::create_voice,
        voices::get_voice,
        voices::delete_voice,
        health::health,
        health::ready,
        health::metrics,
        health::openapi,
        crate::routes::usage::usage,
        crate::routes::batch::create,
        crate::routes::batch::status,
        crate::routes::cache::stats,
        crate::routes::cache::purge,
        crate::routes::cache::audio,
    ),
    components(schemas(
        tts::TtsRequest,
        openai::SpeechRequest,
        openai::VoiceField,
        voices::VoiceList,
        voices::VoiceEntry,
        voices::ModelList,
        voices::ModelEntry,
        voices::ClonedVoice,
        voices::DeletedVoice,
        ErrorBody,
        ErrorDetail,
        crate::speech::Summary,
        crate::routes::usage::UsageReportSchema,
        crate::routes::batch::BatchRequest,
        crate::batch::JobView,
        crate::batch::ItemResult,
        crate::batch::ItemStatus,
        crate::batch::JobStatus,
    ))
)]
pub struct ApiDoc;
