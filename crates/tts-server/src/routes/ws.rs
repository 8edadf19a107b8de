//! `GET /v1/tts/ws`: a WebSocket for conversational agents. The client sends text as it arrives
//! (`{"type":"text","text":"..."}`), then `{"type":"flush"}` to end an utterance or
//! `{"type":"close"}` to end the session. Each completed sentence is synthesized at once; the
//! server answers with binary audio frames (one continuous file per utterance) and JSON events:
//! `audio_start`, `sentence_done`, `done`, `error`. Several utterances share one connection.
//!
//! Backpressure: text waits in a small channel while a sentence is synthesized, and audio frames
//! are sent one at a time, so a slow reader slows synthesis instead of growing buffers.
//!
//! Caching and metering work per sentence, since an utterance is built as text arrives: each
//! sentence's model output is looked up in the audio cache (and stored after synthesis), so a
//! phrase an agent repeats is never synthesized twice, and a sentence another session is
//! synthesizing at that moment is shared rather than synthesized again (`"cache": "coalesced"`).
//! Each utterance is one metered request (characters synthesized and from cache, audio seconds)
//! and, after the first, which the upgrade paid for, takes one token of the key's rate limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tts_audio::AudioFormat;
use tts_cache::{CacheKey, CachedAudio, FlightReader, FlightWriter, Joined};
use utoipa::IntoParams;

use crate::auth::{Caller, UsageTicket};
use crate::cache::{flight_error, sentence_entry, sentence_pcm, CacheStatus};
use crate::engine::{SentenceAudio, SentenceResult};
use crate::error::{ApiError, ErrorBody};
use crate::speech::{
    blocking, finish_summary, sentences, AudioPipeline, RequestContext, SpeechParams,
};
use crate::state::{AppState, SpeechInput};

const ROUTE: &str = "/v1/tts/ws";

/// Session settings, as query parameters of the upgrade request.
#[derive(Debug, Deserialize, IntoParams)]
pub struct WsQuery {
    /// Voice id; default: the server's default voice.
    pub voice: Option<String>,
    pub model: Option<String>,
    /// `pcm` (default here: s16le, what agents play), `wav`, `mp3`, `opus`, `flac`, `mulaw`.
    pub format: Option<String>,
    pub sample_rate: Option<u32>,
    pub speed: Option<f32>,
    pub bitrate: Option<u32>,
}

/// Messages from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ClientMessage {
    Text { text: String },
    Flush,
    Close,
}

enum Command {
    Text(String),
    Flush,
    Close,
    Invalid(ApiError),
}

/// Open a WebSocket synthesis session.
#[utoipa::path(
    get,
    path = "/v1/tts/ws",
    tag = "tts",
    params(WsQuery),
    responses(
        (status = 101, description = "Switching protocols; see the module docs for the messages"),
        (status = 400, description = "Invalid settings; the field is named", body = ErrorBody),
    )
)]
pub async fn websocket(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<WsQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::Invalid {
        code: "invalid_field",
        field: None,
        message: err.body_text(),
    })?;
    let upgrade = upgrade.map_err(|err| ApiError::Invalid {
        code: "websocket_required",
        field: None,
        message: err.body_text(),
    })?;
    // Settings are checked before the upgrade so that errors are plain HTTP answers.
    let params = state.validate(SpeechInput {
        text: "-",
        text_field: "text",
        max_chars: usize::MAX,
        voice: query.voice.as_deref(),
        model: query.model.as_deref(),
        format: query.format.as_deref(),
        format_field: "format",
        default_format: Some(AudioFormat::Pcm),
        sample_rate: query.sample_rate,
        speed: query.speed,
        bitrate: query.bitrate,
        normalize_loudness: None,
    })?;
    let sessions = state.sessions.clone();
    Ok(upgrade.on_upgrade(move |socket| {
        sessions.track_future(Session::run(socket, state, params, caller))
    }))
}

type Sink = SplitSink<WebSocket, Message>;

/// Why a session stops early.
enum End {
    Disconnected,
}

/// One utterance in progress: its encoder and totals.
struct Utterance {
    number: usize,
    pipeline: AudioPipeline,
    ctx: RequestContext,
    /// Records this utterance's usage when dropped, once audio was sent.
    usage: UsageTicket,
    text: String,
    sentences: usize,
    audio_seconds: f64,
    synth_time: Duration,
}

/// One sentence's model output and where it came from.
struct SentencePcm {
    pcm: tts_audio::Pcm,
    cache: CacheStatus,
    queue_wait: Duration,
    synth_time: Duration,
}

/// Where a sentence of a batch comes from.
enum Source {
    Cached(tts_audio::Pcm, CacheStatus),
    /// This session's job, in order.
    Led,
    /// Another session's job for the same sentence, in flight.
    Shared(FlightReader),
}

/// A sentence this session synthesizes, with the flight other sessions may be reading.
struct LedSentence {
    text: String,
    key: CacheKey,
    writer: FlightWriter,
}

/// Takes a job's results off the engine as they come, whatever this session is doing: each is
/// handed to the flight's readers and to the session, then stored, then its flight ends. Reading
/// them here rather than in the session means two sessions waiting on each other's sentences
/// cannot deadlock. A failed job fails the current flight with its error; the flights after it
/// end unanswered, so their readers synthesize those sentences themselves.
fn lead_sentences(
    state: AppState,
    voice: String,
    mut results: mpsc::UnboundedReceiver<SentenceResult>,
    led: Vec<LedSentence>,
) -> mpsc::UnboundedReceiver<Result<SentenceAudio, ApiError>> {
    let (session, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for LedSentence { text, key, writer } in led {
            match results.recv().await {
                Some(Ok(audio)) => {
                    let entry = sentence_entry(&voice, &text, &audio.pcm, audio.synth_time);
                    writer.push(entry.bytes.clone());
                    let _ = session.send(Ok(audio));
                    state.cache.put_sentence(&key, &entry).await;
                    writer.finish(entry.meta);
                }
                Some(Err(err)) => {
                    let err = ApiError::from(err);
                    writer.fail(Arc::new(err.clone()));
                    let _ = session.send(Err(err));
                    return;
                }
                None => return,
            }
        }
    });
    received
}

struct Session {
    state: AppState,
    params: SpeechParams,
    caller: Caller,
    sink: Sink,
    cancel: CancellationToken,
    pending: String,
    utterance: Option<Utterance>,
    utterances: usize,
}

impl Session {
    async fn run(socket: WebSocket, state: AppState, params: SpeechParams, caller: Caller) {
        let (sink, stream) = socket.split();
        let cancel = CancellationToken::new();
        // Small on purpose: when synthesis lags, the reader stops reading and TCP pushes back.
        let (commands_tx, mut commands) = mpsc::channel(16);
        let reader = tokio::spawn(read_commands(stream, commands_tx, cancel.clone()));
        let mut session = Session {
            state,
            params,
            caller,
            sink,
            cancel,
            pending: String::new(),
            utterance: None,
            utterances: 0,
        };
        let shutdown = session.state.shutdown.clone();
        loop {
            let command = tokio::select! {
                command = commands.recv() => command,
                () = shutdown.cancelled() => Some(Command::Close),
            };
            let result = match command {
                None => Err(End::Disconnected),
                Some(Command::Text(text)) => session.on_text(text).await,
                Some(Command::Flush) => session.flush().await,
                Some(Command::Close) => {
                    let flushed = session.flush().await;
                    if flushed.is_ok() {
                        let _ = session.sink.send(Message::Close(None)).await;
                    }
                    break;
                }
                Some(Command::Invalid(err)) => session.send_error(&err).await,
            };
            if result.is_err() {
                break;
            }
        }
        // Leaving cancels whatever is still queued for this client.
        session.cancel.cancel();
        reader.abort();
    }

    async fn on_text(&mut self, text: String) -> Result<(), End> {
        self.pending.push_str(&text);
        if self.pending.chars().count() > self.state.config.max_text_chars {
            self.pending.clear();
            let err = ApiError::invalid(
                "text_too_long",
                "text",
                format!(
                    "pending text exceeds {} characters; send flush sooner",
                    self.state.config.max_text_chars
                ),
            );
            return self.send_error(&err).await;
        }
        let complete = take_complete_sentences(&mut self.pending);
        self.speak(complete).await
    }

    /// Speaks what is pending and ends the utterance.
    async fn flush(&mut self) -> Result<(), End> {
        let rest = sentences(&std::mem::take(&mut self.pending));
        self.speak(rest).await?;
        let Some(utterance) = self.utterance.take() else {
            return Ok(());
        };
        let tail = blocking(move || {
            let mut utterance = utterance;
            let tail = utterance.pipeline.finish()?;
            Ok((utterance, tail))
        })
        .await;
        let (utterance, tail) = match tail {
            Ok(done) => done,
            Err(err) => return self.send_error(&err).await,
        };
        if !tail.is_empty() {
            self.send(Message::Binary(tail.into())).await?;
        }
        let mut params = self.params.clone();
        params.text = utterance.text.clone();
        let summary = finish_summary(
            &utterance.ctx,
            &params,
            utterance.sentences,
            utterance.audio_seconds,
            utterance.synth_time,
            utterance.pipeline.output_sample_rate(),
        );
        self.send_json(json!({
            "type": "done",
            "utterance": utterance.number,
            "sentences": utterance.sentences,
            "characters": summary.characters,
            "audio_seconds": summary.audio_seconds,
            // Synthesis time over audio time; waiting for the client's text is not counted.
            "rtf": summary.rtf,
        }))
        .await
    }

    /// Speaks `batch` in order, sending each sentence's audio as it is ready: sentences in the
    /// cache at once, sentences another session is synthesizing right now from its output, the
    /// rest synthesized as one job (stored, and shared with sessions asking meanwhile).
    async fn speak(&mut self, batch: Vec<String>) -> Result<(), End> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.utterance.is_none() {
            if let Err(err) = self.start_utterance().await {
                return self.send_error(&err).await;
            }
        }
        let started = Instant::now();
        let mut sources = Vec::with_capacity(batch.len());
        let mut led = Vec::new();
        for sentence in &batch {
            let key = self.state.cache.sentence_key(&self.params, sentence);
            if let Some((pcm, status)) = self.state.cache.get_sentence(&key).await {
                sources.push(Source::Cached(pcm, status));
                continue;
            }
            match self.state.cache.tiers().coalescer().join(&key) {
                // This session reads its own sentences from the job, not through the flight.
                Joined::Leader(writer, _) => {
                    led.push(LedSentence {
                        text: sentence.clone(),
                        key,
                        writer,
                    });
                    sources.push(Source::Led);
                }
                Joined::Follower(reader) => sources.push(Source::Shared(reader)),
            }
        }
        let mut led_results = if led.is_empty() {
            None
        } else {
            let texts = led.iter().map(|s| s.text.clone()).collect();
            match self
                .state
                .speech
                .submit(&self.params, texts, &self.cancel, started)
            {
                Ok(results) => Some(lead_sentences(
                    self.state.clone(),
                    self.params.voice.clone(),
                    results,
                    led,
                )),
                Err(err) => {
                    for sentence in led {
                        sentence.writer.fail(Arc::new(err.clone()));
                    }
                    return self.send_error(&err).await;
                }
            }
        };
        let deadline =
            tokio::time::Instant::from_std(started + self.state.speech.settings().timeout);
        for (text, source) in batch.into_iter().zip(sources) {
            let sentence = match source {
                Source::Cached(pcm, cache) => SentencePcm {
                    pcm,
                    cache,
                    queue_wait: Duration::ZERO,
                    synth_time: Duration::ZERO,
                },
                Source::Led => {
                    let Some(results) = led_results.as_mut() else {
                        return Ok(());
                    };
                    let next = tokio::select! {
                        next = tokio::time::timeout_at(deadline, results.recv()) => next,
                        () = self.cancel.cancelled() => return Err(End::Disconnected),
                    };
                    match next {
                        Ok(None) => return Ok(()),
                        Ok(Some(Ok(audio))) => SentencePcm {
                            pcm: audio.pcm,
                            cache: CacheStatus::Miss,
                            queue_wait: audio.queue_wait,
                            synth_time: audio.synth_time,
                        },
                        Ok(Some(Err(err))) => return self.send_error(&err).await,
                        Err(_) => return self.send_error(&ApiError::Timeout).await,
                    }
                }
                Source::Shared(reader) => {
                    let shared = tokio::select! {
                        shared = tokio::time::timeout_at(deadline, reader.collect()) => shared,
                        () = self.cancel.cancelled() => return Err(End::Disconnected),
                    };
                    let outcome = match shared {
                        Ok(Ok((bytes, meta))) => self.shared_sentence(CachedAudio { bytes, meta }),
                        // The leader's own error (a full queue, text the model refuses) is ours.
                        Ok(Err(error)) if error.downcast_ref::<ApiError>().is_some() => {
                            Err(flight_error(error))
                        }
                        // The leading session went away mid-job: synthesize it here instead.
                        Ok(Err(_)) => self.synthesize_alone(&text, started, deadline).await,
                        Err(_) => Err(ApiError::Timeout),
                    };
                    match outcome {
                        Ok(sentence) => sentence,
                        Err(err) => return self.send_error(&err).await,
                    }
                }
            };
            self.send_sentence(text, sentence).await?;
        }
        Ok(())
    }

    /// A sentence another session synthesized while this one asked for it.
    fn shared_sentence(&self, audio: CachedAudio) -> Result<SentencePcm, ApiError> {
        let pcm = sentence_pcm(&audio)
            .ok_or_else(|| ApiError::Internal("a shared sentence was not sentence PCM".into()))?;
        self.state.cache.tiers().note_coalesced(&audio);
        Ok(SentencePcm {
            pcm,
            cache: CacheStatus::Coalesced,
            queue_wait: Duration::ZERO,
            synth_time: Duration::ZERO,
        })
    }

    /// Synthesizes one sentence for this session alone, and stores it.
    async fn synthesize_alone(
        &mut self,
        text: &str,
        started: Instant,
        deadline: tokio::time::Instant,
    ) -> Result<SentencePcm, ApiError> {
        let mut results = self.state.speech.submit(
            &self.params,
            vec![text.to_string()],
            &self.cancel,
            started,
        )?;
        let audio = match tokio::time::timeout_at(deadline, results.recv()).await {
            Ok(Some(result)) => result?,
            Ok(None) => return Err(ApiError::Internal("synthesis ended without audio".into())),
            Err(_) => return Err(ApiError::Timeout),
        };
        let key = self.state.cache.sentence_key(&self.params, text);
        let entry = sentence_entry(&self.params.voice, text, &audio.pcm, audio.synth_time);
        let state = self.state.clone();
        tokio::spawn(async move { state.cache.put_sentence(&key, &entry).await });
        Ok(SentencePcm {
            pcm: audio.pcm,
            cache: CacheStatus::Miss,
            queue_wait: audio.queue_wait,
            synth_time: audio.synth_time,
        })
    }

    /// Encodes one sentence into the utterance's stream and sends it with its `sentence_done`.
    async fn send_sentence(&mut self, text: String, sentence: SentencePcm) -> Result<(), End> {
        let Some(utterance) = self.utterance.take() else {
            return Ok(());
        };
        let index = utterance.sentences;
        let SentencePcm {
            pcm,
            cache,
            queue_wait,
            synth_time,
        } = sentence;
        let encoded = blocking(move || {
            let mut utterance = utterance;
            let (bytes, seconds) = utterance.pipeline.sentence(pcm)?;
            Ok((utterance, bytes, seconds))
        })
        .await;
        let (mut utterance, bytes, seconds) = match encoded {
            Ok(done) => done,
            Err(err) => return self.send_error(&err).await,
        };
        let characters = text.chars().count();
        if cache == CacheStatus::Miss {
            utterance.usage.add_synthesized(characters, seconds);
        } else {
            utterance.usage.add_cached(characters, seconds);
        }
        utterance.usage.mark_served();
        utterance.sentences += 1;
        utterance.audio_seconds += seconds;
        utterance.synth_time += synth_time;
        if !utterance.text.is_empty() {
            utterance.text.push(' ');
        }
        utterance.text.push_str(&text);
        let number = utterance.number;
        self.utterance = Some(utterance);
        if !bytes.is_empty() {
            self.send(Message::Binary(bytes.into())).await?;
        }
        self.send_json(json!({
            "type": "sentence_done",
            "utterance": number,
            "index": index,
            "text": text,
            "audio_seconds": seconds,
            "cache": cache.as_str(),
            "queue_ms": queue_wait.as_secs_f64() * 1000.0,
            "synth_ms": synth_time.as_secs_f64() * 1000.0,
        }))
        .await
    }

    async fn start_utterance(&mut self) -> Result<(), ApiError> {
        if self.utterances > 0 {
            self.state.auth.check_rate(&self.caller)?;
        }
        let pipeline = AudioPipeline::new(&self.params, self.state.speech.settings())?;
        self.utterances += 1;
        let number = self.utterances;
        let sample_rate = pipeline.output_sample_rate();
        // Usage is recorded per sentence (synthesized or cached) through `usage`, not by the
        // summary at the end, which would count every character as synthesized.
        let ctx = RequestContext {
            usage: None,
            ..RequestContext::new(ROUTE)
        };
        self.utterance = Some(Utterance {
            number,
            pipeline,
            ctx,
            usage: UsageTicket::new(self.state.usage.clone(), self.caller.clone()),
            text: String::new(),
            sentences: 0,
            audio_seconds: 0.0,
            synth_time: Duration::ZERO,
        });
        let format = self.params.format;
        self.send_json(json!({
            "type": "audio_start",
            "utterance": number,
            "format": format.as_str(),
            "content_type": format.content_type(),
            "sample_rate": sample_rate,
            "voice": self.params.voice,
        }))
        .await
        .map_err(|_| ApiError::from(crate::engine::EngineError::Cancelled))
    }

    async fn send_error(&mut self, err: &ApiError) -> Result<(), End> {
        let detail = err.body().error;
        self.send_json(json!({
            "type": "error",
            "code": detail.code,
            "message": detail.message,
            "field": detail.field,
            "retry_after_secs": err.retry_after_secs(),
        }))
        .await
    }

    async fn send_json(&mut self, value: serde_json::Value) -> Result<(), End> {
        self.send(Message::Text(value.to_string().into())).await
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        self.sink.send(message).await.map_err(|_| End::Disconnected)
    }
}

/// Reads client messages into commands; cancels the session when the client goes away.
async fn read_commands(
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    commands: mpsc::Sender<Command>,
    cancel: CancellationToken,
) {
    while let Some(message) = stream.next().await {
        let command = match message {
            Ok(Message::Text(text)) => parse_command(text.as_str()),
            Ok(Message::Binary(_)) => Command::Invalid(ApiError::Invalid {
                code: "invalid_message",
                field: None,
                message: "send JSON text messages, not binary".into(),
            }),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => break,
        };
        let is_close = matches!(command, Command::Close);
        if commands.send(command).await.is_err() || is_close {
            return;
        }
    }
    cancel.cancel();
}

fn parse_command(text: &str) -> Command {
    match crate::extract::parse::<ClientMessage>(text.as_bytes()) {
        Ok(ClientMessage::Text { text }) => Command::Text(text),
        Ok(ClientMessage::Flush) => Command::Flush,
        Ok(ClientMessage::Close) => Command::Close,
        Err(err) => Command::Invalid(err),
    }
}

/// Removes the sentences known to be complete from `pending`: all but the last one, which may
/// still grow ("Dr." followed by " Smith").
fn take_complete_sentences(pending: &mut String) -> Vec<String> {
    let mut parts = tts_text::split_sentences(pending);
    if parts.len() < 2 {
        return Vec::new();
    }
    let trailing_space = pending.ends_with(char::is_whitespace);
    let mut last = parts.pop().unwrap_or_default();
    if trailing_space {
        last.push(' ');
    }
    *pending = last;
    parts.iter().flat_map(|p| sentences(p)).collect()
}
