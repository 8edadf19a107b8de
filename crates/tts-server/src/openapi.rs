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
        health::health,
        health::ready,
        health::metrics,
        health::openapi,
    ),
    components(schemas(
        tts::TtsRequest,
        openai::SpeechRequest,
        openai::VoiceField,
        voices::VoiceList,
        voices::VoiceEntry,
        voices::ModelList,
        voices::ModelEntry,
        ErrorBody,
        ErrorDetail,
        crate::speech::Summary,
    ))
)]
pub struct ApiDoc;
