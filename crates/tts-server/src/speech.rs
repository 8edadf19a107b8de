//! From a validated request to encoded audio, whole or streamed. This is the layer between HTTP and
//! the model server: it splits text into sentences, submits one job, joins the sentences, resamples,
//! normalises loudness and encodes. Routes only translate its results into their wire format.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tts_audio::loudness::{self, LoudnessTarget};
use tts_audio::{AudioFormat, EncoderOptions, Pcm, StreamEncoder, StreamResampler};
use tts_models::registry::LoadedModel;

use crate::engine::{EngineError, ModelServer, SentenceAudio, SpeechJob};
use crate::error::ApiError;
use crate::joiner::SentenceJoiner;
use crate::metrics as m;

/// Output sample rates a request may ask for (those every encoder accepts).
pub const SAMPLE_RATES: &[u32] = &[
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];
pub const SPEED_RANGE: std::ops::RangeInclusive<f32> = 0.25..=4.0;
pub const BITRATE_RANGE_KBPS: std::ops::RangeInclusive<u32> = 8..=320;
/// Sentences longer than this are cut at commas or spaces, so no model sees an over-long input.
const MAX_CHUNK_CHARS: usize = 300;

/// A request after validation: everything needed to synthesize, nothing HTTP-specific.
#[derive(Clone)]
pub struct SpeechParams {
    pub text: String,
    pub voice: String,
    pub model: LoadedModel,
    pub format: AudioFormat,
    /// Output rate; `None` keeps the model's.
    pub sample_rate: Option<u32>,
    pub speed: f32,
    pub bitrate_kbps: Option<u32>,
    pub normalize_loudness: bool,
}

/// Who asked, for logs and metrics.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub id: String,
    pub route: &'static str,
    pub started: Instant,
    /// Meters this request's usage (set by the auth middleware on the synthesis routes).
    pub usage: Option<crate::auth::UsageTicket>,
}

impl RequestContext {
    pub fn new(route: &'static str) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            route,
            started: Instant::now(),
            usage: crate::auth::UsageTicket::current(),
        }
    }

    /// The request was answered without synthesis (a cache hit or a coalesced follower).
    pub fn record_cached(&self, characters: usize, audio_seconds: f64) {
        if let Some(ticket) = &self.usage {
            ticket.add_cached(characters, audio_seconds);
        }
    }
}

/// A whole encoded file.
#[derive(Debug)]
pub struct AudioFile {
    /// Shared with the cache entry it came from or went into: a hit copies nothing.
    pub bytes: Bytes,
    pub format: AudioFormat,
    pub sample_rate: u32,
    pub summary: Summary,
}

/// Totals of one synthesis.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub characters: usize,
    pub sentences: usize,
    pub audio_seconds: f64,
    /// Wall time of the synthesis divided by the audio duration (below 1: faster than real time).
    pub rtf: f64,
    pub latency_ms: f64,
    pub sample_rate: u32,
}

/// Per-sentence progress, streamed to SSE and WebSocket clients.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SentenceInfo {
    pub index: usize,
    pub text: String,
    pub audio_seconds: f64,
    pub queue_ms: f64,
    pub synth_ms: f64,
}

#[derive(Debug)]
pub enum StreamEvent {
    /// Encoded bytes, in order; their concatenation is one valid file.
    Audio(Bytes),
    /// A sentence was synthesized and its audio sent.
    Sentence(SentenceInfo),
    Done(Summary),
    /// The stream ends early; bytes sent so far are not a complete file.
    Failed(ApiError),
}

/// Streamed synthesis. Dropping it (client gone) cancels the sentences not yet synthesized.
pub struct AudioStream {
    events: mpsc::Receiver<StreamEvent>,
    pub format: AudioFormat,
    pub sample_rate: u32,
    _cancel_on_drop: DropGuard,
}

impl AudioStream {
    /// A stream of ready-made events (a cache hit, a shared synthesis); dropping it cancels nothing.
    pub fn from_events(
        events: mpsc::Receiver<StreamEvent>,
        format: AudioFormat,
        sample_rate: u32,
    ) -> Self {
        Self {
            events,
            format,
            sample_rate,
            _cancel_on_drop: CancellationToken::new().drop_guard(),
        }
    }
}

impl futures_util::Stream for AudioStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.events.poll_recv(cx)
    }
}

/// Splits text into the sentences the model is fed, first sentence first.
pub fn sentences(text: &str) -> Vec<String> {
    tts_text::split_sentences(text)
        .into_iter()
        .flat_map(|s| chunk_long(s.trim(), MAX_CHUNK_CHARS))
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

/// Cuts `sentence` into pieces of at most `max` characters, preferring commas, then spaces.
fn chunk_long(sentence: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = sentence;
    while rest.chars().count() > max {
        let limit = rest
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let head = &rest[..limit];
        let cut = head
            .rfind([',', ';', ':'])
            .map(|i| i + 1)
            .or_else(|| head.rfind(char::is_whitespace))
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        pieces.push(rest[..cut].trim().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.trim().is_empty() {
        pieces.push(rest.trim().to_string());
    }
    pieces
}

/// Synthesis settings shared by every request.
#[derive(Debug, Clone)]
pub struct SpeechSettings {
    pub timeout: Duration,
    pub fade_ms: f32,
    pub pause_ms: f32,
}

/// Runs requests against the model server.
#[derive(Clone)]
pub struct SpeechService {
    engine: Arc<ModelServer>,
    settings: SpeechSettings,
}

impl SpeechService {
    pub fn new(engine: Arc<ModelServer>, settings: SpeechSettings) -> Self {
        Self { engine, settings }
    }

    pub fn engine(&self) -> &Arc<ModelServer> {
        &self.engine
    }

    pub fn settings(&self) -> &SpeechSettings {
        &self.settings
    }

    /// Enqueues the sentences of one request; they come back in order on the receiver.
    pub fn submit(
        &self,
        params: &SpeechParams,
        sentences: Vec<String>,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<mpsc::UnboundedReceiver<crate::engine::SentenceResult>, ApiError> {
        if sentences.is_empty() {
            return Err(ApiError::invalid(
                "empty_text",
                "text",
                "text has nothing to speak",
            ));
        }
        let job = SpeechJob {
            model: params.model.clone(),
            voice: params.voice.clone(),
            sentences,
            speed: params.speed,
            cancel: cancel.clone(),
            deadline: started + self.settings.timeout,
        };
        Ok(self.engine.submit(job)?)
    }

    /// Synthesizes the whole text and encodes one file.
    pub async fn synthesize_file(
        &self,
        params: &SpeechParams,
        ctx: &RequestContext,
    ) -> Result<AudioFile, ApiError> {
        let cancel = CancellationToken::new();
        // Dropping this future (client disconnected) cancels the job.
        let _guard = cancel.clone().drop_guard();
        let model_rate = params.model.model.sample_rate();
        let sentence_list = sentences(&params.text);
        let count = sentence_list.len();
        let mut rx = self.submit(params, sentence_list, &cancel, ctx.started)?;
        let deadline = tokio::time::Instant::from_std(ctx.started + self.settings.timeout);

        let mut joiner =
            SentenceJoiner::new(model_rate, self.settings.fade_ms, self.settings.pause_ms);
        let mut samples = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Err(ApiError::Timeout),
                Ok(None) => break,
                Ok(Some(result)) => {
                    let audio = result?;
                    samples.extend(joiner.next(resample_to(audio.pcm, model_rate)?));
                }
            }
        }
        let pcm = Pcm::new(samples, model_rate);
        let audio_seconds = pcm.duration_secs();
        let format = params.format;
        let (target_rate, bitrate, normalize) = (
            params.sample_rate,
            params.bitrate_kbps,
            params.normalize_loudness,
        );
        let (bytes, sample_rate) = tokio::task::spawn_blocking(move || {
            encode_whole(pcm, format, target_rate, bitrate, normalize)
        })
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))??;

        let latency = ctx.started.elapsed();
        m::time_to_first_audio(ctx.route, latency);
        let summary = finish_summary(ctx, params, count, audio_seconds, latency, sample_rate);
        Ok(AudioFile {
            bytes: bytes.into(),
            format,
            sample_rate,
            summary,
        })
    }

    /// Starts a streamed synthesis. Fails before any byte is sent when the request is refused
    /// (queue full), so routes can still answer with a proper status.
    pub fn stream(
        &self,
        params: &SpeechParams,
        ctx: &RequestContext,
    ) -> Result<AudioStream, ApiError> {
        self.stream_sentences(params, ctx, sentences(&params.text))
    }

    fn stream_sentences(
        &self,
        params: &SpeechParams,
        ctx: &RequestContext,
        sentence_list: Vec<String>,
    ) -> Result<AudioStream, ApiError> {
        let mut pipeline = AudioPipeline::new(params, &self.settings)?;
        let sample_rate = pipeline.output_sample_rate();
        let cancel = CancellationToken::new();
        let texts = sentence_list.clone();
        let mut rx = self.submit(params, sentence_list, &cancel, ctx.started)?;
        let (tx, events) = mpsc::channel(8);
        let deadline = tokio::time::Instant::from_std(ctx.started + self.settings.timeout);
        let ctx = ctx.clone();
        let params_for_log = params.clone();
        let cancel_task = cancel.clone();

        tokio::spawn(async move {
            let mut first_audio = true;
            let mut audio_seconds = 0.0;
            let outcome: Result<(), ApiError> = async {
                loop {
                    let next = tokio::select! {
                        next = tokio::time::timeout_at(deadline, rx.recv()) => next,
                        () = cancel_task.cancelled() => return Err(ApiError::from(EngineError::Cancelled)),
                    };
                    let audio: SentenceAudio = match next {
                        Err(_) => return Err(ApiError::Timeout),
                        Ok(None) => break,
                        Ok(Some(result)) => result?,
                    };
                    let info = SentenceInfo {
                        index: audio.index,
                        text: texts.get(audio.index).cloned().unwrap_or_default(),
                        audio_seconds: audio.pcm.duration_secs(),
                        queue_ms: audio.queue_wait.as_secs_f64() * 1000.0,
                        synth_ms: audio.synth_time.as_secs_f64() * 1000.0,
                    };
                    let (returned, bytes, secs) = blocking(move || {
                        let mut pipeline = pipeline;
                        let (bytes, secs) = pipeline.sentence(audio.pcm)?;
                        Ok((pipeline, bytes, secs))
                    })
                    .await?;
                    pipeline = returned;
                    audio_seconds += secs;
                    if !bytes.is_empty() {
                        if first_audio {
                            first_audio = false;
                            m::time_to_first_audio(ctx.route, ctx.started.elapsed());
                        }
                        send(&tx, StreamEvent::Audio(bytes.into())).await?;
                    }
                    send(&tx, StreamEvent::Sentence(info)).await?;
                }
                let (_, tail) = blocking(move || {
                    let mut pipeline = pipeline;
                    let tail = pipeline.finish()?;
                    Ok((pipeline, tail))
                })
                .await?;
                if !tail.is_empty() {
                    if first_audio {
                        m::time_to_first_audio(ctx.route, ctx.started.elapsed());
                    }
                    send(&tx, StreamEvent::Audio(tail.into())).await?;
                }
                Ok(())
            }
            .await;
            match outcome {
                Ok(()) => {
                    let latency = ctx.started.elapsed();
                    let summary = finish_summary(
                        &ctx,
                        &params_for_log,
                        texts.len(),
                        audio_seconds,
                        latency,
                        sample_rate,
                    );
                    let _ = tx.send(StreamEvent::Done(summary)).await;
                }
                Err(err) => {
                    tracing::info!(request_id = %ctx.id, route = ctx.route, error = %err, "stream ended early");
                    let _ = tx.send(StreamEvent::Failed(err)).await;
                }
            }
        });

        Ok(AudioStream {
            events,
            format: params.format,
            sample_rate,
            _cancel_on_drop: cancel.drop_guard(),
        })
    }
}

/// The receiver is gone: the client disconnected.
async fn send(tx: &mpsc::Sender<StreamEvent>, event: StreamEvent) -> Result<(), ApiError> {
    tx.send(event)
        .await
        .map_err(|_| ApiError::from(EngineError::Cancelled))
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
}

/// Records metrics and the structured log line of one finished synthesis.
pub fn finish_summary(
    ctx: &RequestContext,
    params: &SpeechParams,
    sentences: usize,
    audio_seconds: f64,
    latency: Duration,
    sample_rate: u32,
) -> Summary {
    let characters = params.text.chars().count();
    if let Some(ticket) = &ctx.usage {
        ticket.add_synthesized(characters, audio_seconds);
    }
    let rtf = if audio_seconds > 0.0 {
        latency.as_secs_f64() / audio_seconds
    } else {
        0.0
    };
    m::synthesis_done(
        ctx.route,
        &params.model.id,
        characters,
        audio_seconds,
        latency,
    );
    tracing::info!(
        request_id = %ctx.id,
        route = ctx.route,
        model = %params.model.id,
        voice = %params.voice,
        format = %params.format,
        characters,
        sentences,
        audio_seconds,
        rtf,
        latency_ms = latency.as_secs_f64() * 1000.0,
        "synthesis done"
    );
    Summary {
        characters,
        sentences,
        audio_seconds,
        rtf,
        latency_ms: latency.as_secs_f64() * 1000.0,
        sample_rate,
    }
}

/// Models promise their own rate, but a stray one must not corrupt the stream.
fn resample_to(pcm: Pcm, rate: u32) -> Result<Vec<f32>, ApiError> {
    if pcm.sample_rate == rate {
        Ok(pcm.samples)
    } else {
        Ok(tts_audio::resample(&pcm, rate)?.samples)
    }
}

/// Loudness, resampling and encoding of a complete signal.
fn encode_whole(
    pcm: Pcm,
    format: AudioFormat,
    target_rate: Option<u32>,
    bitrate_kbps: Option<u32>,
    normalize: bool,
) -> Result<(Vec<u8>, u32), ApiError> {
    let pcm = if normalize && !pcm.samples.is_empty() {
        loudness::normalize(&pcm, &LoudnessTarget::default())?
    } else {
        pcm
    };
    let pcm = match target_rate {
        Some(rate) if rate != pcm.sample_rate => tts_audio::resample(&pcm, rate)?,
        _ => pcm,
    };
    let mut encoder = tts_audio::new_encoder(&EncoderOptions {
        format,
        sample_rate: pcm.sample_rate,
        bitrate_kbps,
        total_samples: Some(pcm.samples.len() as u64),
    })?;
    let mut bytes = encoder.push(&pcm.samples)?;
    bytes.extend(encoder.finish()?);
    Ok((bytes, encoder.output_sample_rate()))
}

/// Per-stream audio state: joiner → loudness → resampler → one encoder, so the concatenated
/// output is one valid file.
pub struct AudioPipeline {
    model_rate: u32,
    joiner: SentenceJoiner,
    resampler: Option<StreamResampler>,
    encoder: Box<dyn StreamEncoder>,
    normalize: bool,
}

impl AudioPipeline {
    pub fn new(params: &SpeechParams, settings: &SpeechSettings) -> Result<Self, ApiError> {
        let model_rate = params.model.model.sample_rate();
        let encoder_rate = params.sample_rate.unwrap_or(model_rate);
        let resampler = match params.sample_rate {
            Some(rate) if rate != model_rate => Some(StreamResampler::new(model_rate, rate)?),
            _ => None,
        };
        let encoder = tts_audio::new_encoder(&EncoderOptions {
            format: params.format,
            sample_rate: encoder_rate,
            bitrate_kbps: params.bitrate_kbps,
            total_samples: None,
        })?;
        Ok(Self {
            model_rate,
            joiner: SentenceJoiner::new(model_rate, settings.fade_ms, settings.pause_ms),
            resampler,
            encoder,
            normalize: params.normalize_loudness,
        })
    }

    /// Encoded bytes for one sentence, and the seconds of audio it added.
    pub fn output_sample_rate(&self) -> u32 {
        self.encoder.output_sample_rate()
    }

    pub fn sentence(&mut self, pcm: Pcm) -> Result<(Vec<u8>, f64), ApiError> {
        let samples = self.joiner.next(resample_to(pcm, self.model_rate)?);
        let seconds = samples.len() as f64 / self.model_rate as f64;
        // A stream cannot be measured as a whole: each sentence is brought to the target alone.
        let samples = if self.normalize && !samples.is_empty() {
            loudness::normalize(
                &Pcm::new(samples.clone(), self.model_rate),
                &LoudnessTarget::default(),
            )
            .map(|p| p.samples)
            .unwrap_or(samples)
        } else {
            samples
        };
        let samples = match &mut self.resampler {
            Some(resampler) => resampler.process(&samples)?,
            None => samples,
        };
        Ok((self.encoder.push(&samples)?, seconds))
    }

    pub fn finish(&mut self) -> Result<Vec<u8>, ApiError> {
        let mut bytes = Vec::new();
        if let Some(resampler) = &mut self.resampler {
            let tail = resampler.finish()?;
            bytes.extend(self.encoder.push(&tail)?);
        }
        bytes.extend(self.encoder.finish()?);
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sentence_is_cut_at_commas_within_the_limit() {
        let sentence = "one two three, four five six, seven eight nine";
        let pieces = chunk_long(sentence, 20);
        assert!(pieces.iter().all(|p| p.chars().count() <= 20), "{pieces:?}");
        assert_eq!(pieces.join(" "), sentence);
    }

    #[test]
    fn unbroken_text_is_cut_hard() {
        let pieces = chunk_long(&"x".repeat(45), 20);
        assert_eq!(
            pieces.iter().map(String::len).collect::<Vec<_>>(),
            vec![20, 20, 5]
        );
    }
}
