//! Cloned voices in the server: the on-disk library (`tts_voicelib`), their registration with
//! Kokoro at start-up and after an upload, and the upload pipeline — check and process the sample,
//! embed it (GE2E) and fit a Kokoro style pack (`tts_speaker`), store it, register it.
//!
//! Heavy work runs on blocking threads; one fit runs at a time (it saturates the CPU, like the
//! inference workers) and a few more uploads may wait for it before new ones get 503.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tts_models::registry::ModelRegistry;
use tts_speaker::clone::{fit_kokoro_style, FitOptions};
use tts_speaker::{SpeakerEncoder, SpeakerError};
use tts_voicelib::{
    prepare_sample, LoadedVoice, UploadLimits, VoiceDraft, VoiceError, VoiceLibrary, VoiceMeta,
};

use crate::config::ServerConfig;
use crate::engine::ModelServer;

/// Models a cloned voice can be spoken by (Piper voices are fixed-speaker).
pub const CLONE_MODELS: &[&str] = &["kokoro"];
/// Fits running at once.
const FIT_CONCURRENCY: usize = 1;
/// Uploads in progress (processing, waiting for or in a fit) before new ones get 503.
const MAX_UPLOADS_IN_FLIGHT: usize = 4;

/// What an upload asks for, once its fields are checked.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub name: String,
    pub language: Option<String>,
    pub transcript: Option<String>,
    pub bytes: Vec<u8>,
}

/// Why an upload or a deletion failed.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error(transparent)]
    Voice(#[from] VoiceError),
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
    #[error("voice cloning needs the Kokoro model, which is not loaded")]
    NoKokoro,
    #[error("too many voice uploads in progress; retry later")]
    Busy,
    #[error("voice library is not open")]
    Closed,
    #[error("{0}")]
    Internal(String),
}

/// The cloned voices of one server.
pub struct ClonedVoices {
    library: OnceLock<VoiceLibrary>,
    limits: UploadLimits,
    fit: FitOptions,
    encoder_path: PathBuf,
    encoder: Mutex<Option<Arc<SpeakerEncoder>>>,
    fit_slots: Arc<Semaphore>,
    uploads: Arc<Semaphore>,
}

impl std::fmt::Debug for ClonedVoices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClonedVoices")
            .field("limits", &self.limits)
            .field("fit", &self.fit)
            .finish()
    }
}

impl ClonedVoices {
    /// Settings only; [`ClonedVoices::open`] reads the library.
    pub fn new(config: &ServerConfig) -> Self {
        Self {
            library: OnceLock::new(),
            limits: UploadLimits {
                max_bytes: (config.voice_upload_max_mb * 1024.0 * 1024.0) as usize,
                min_secs: config.voice_min_secs,
                max_secs: config.voice_max_secs,
                ..UploadLimits::default()
            },
            fit: FitOptions {
                time_budget_secs: config.voice_fit_secs,
                max_iterations: config.voice_fit_iterations,
                ..FitOptions::default()
            },
            encoder_path: config
                .models_dir
                .join("speaker")
                .join("resemblyzer-ge2e.pt"),
            encoder: Mutex::new(None),
            fit_slots: Arc::new(Semaphore::new(FIT_CONCURRENCY)),
            uploads: Arc::new(Semaphore::new(MAX_UPLOADS_IN_FLIGHT)),
        }
    }

    pub fn limits(&self) -> &UploadLimits {
        &self.limits
    }

    /// Opens `<storage_dir>/voices` (sweeping crash leftovers) and registers every stored voice
    /// with Kokoro. Voices that cannot be registered are logged and skipped.
    pub fn open(
        &self,
        storage_dir: &std::path::Path,
        registry: &ModelRegistry,
    ) -> Result<usize, VoiceError> {
        let (library, loaded) = VoiceLibrary::open(storage_dir)?;
        let mut registered = 0;
        for LoadedVoice { meta, pack } in loaded {
            match register(registry, &meta.id, &pack) {
                Ok(()) => registered += 1,
                Err(err) => {
                    tracing::warn!(voice = %meta.id, error = %err, "stored voice not registered")
                }
            }
        }
        if self.library.set(library).is_err() {
            tracing::warn!("voice library opened twice; keeping the first");
        }
        Ok(registered)
    }

    fn library(&self) -> Result<&VoiceLibrary, CloneError> {
        self.library.get().ok_or(CloneError::Closed)
    }

    /// Every cloned voice.
    pub fn list(&self) -> Vec<VoiceMeta> {
        self.library
            .get()
            .map(VoiceLibrary::list)
            .unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<VoiceMeta> {
        self.library.get()?.get(id)
    }

    /// The digest of a cloned voice (sha256 of its upload and fit parameters), for cache keys.
    pub fn digest(&self, id: &str) -> Option<String> {
        self.get(id).map(|meta| meta.digest)
    }

    /// The speaker encoder, loaded on first use.
    fn encoder(&self) -> Result<Arc<SpeakerEncoder>, CloneError> {
        let mut slot = self
            .encoder
            .lock()
            .map_err(|_| CloneError::Internal("speaker encoder lock poisoned".into()))?;
        if let Some(encoder) = slot.as_ref() {
            return Ok(encoder.clone());
        }
        let encoder = Arc::new(SpeakerEncoder::load(
            &self.encoder_path,
            &candle_core::Device::Cpu,
        )?);
        *slot = Some(encoder.clone());
        Ok(encoder)
    }

    /// Checks, processes, embeds, fits, stores and registers one upload. Validation runs before
    /// the upload waits for a fit slot, so bad files fail fast.
    pub async fn create(
        self: &Arc<Self>,
        engine: Arc<ModelServer>,
        request: UploadRequest,
    ) -> Result<VoiceMeta, CloneError> {
        let _upload = self
            .uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| CloneError::Busy)?;
        let rate = engine
            .registry()
            .kokoro()
            .map(|_| tts_models::kokoro::SAMPLE_RATE)
            .ok_or(CloneError::NoKokoro)?;
        let request = Arc::new(request);
        let limits = self.limits.clone();
        let checked = request.clone();
        let prepared =
            tokio::task::spawn_blocking(move || prepare_sample(&checked.bytes, &limits, rate))
                .await
                .map_err(|e| CloneError::Internal(e.to_string()))??;
        let permit = self
            .fit_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| CloneError::Internal(e.to_string()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.fit_and_store(&engine, &request, prepared)
        })
        .await
        .map_err(|e| CloneError::Internal(e.to_string()))?
    }

    fn fit_and_store(
        &self,
        engine: &ModelServer,
        request: &UploadRequest,
        prepared: tts_voicelib::PreparedSample,
    ) -> Result<VoiceMeta, CloneError> {
        let library = self.library()?;
        let registry = engine.registry();
        let kokoro = registry.kokoro().ok_or(CloneError::NoKokoro)?;
        // The original goes to disk first, in a temp dir that a crash leaves for the start-up sweep.
        let pending = library.begin(&request.name, &request.bytes, prepared.format, &|id| {
            registry.has_voice(id)
        })?;
        let encoder = self.encoder()?;
        let started = std::time::Instant::now();
        let embedding = encoder.embed(&prepared.pcm)?;
        let fitted = fit_kokoro_style(&prepared.pcm, kokoro, &encoder, &self.fit)?;
        tracing::info!(voice = %pending.id(), secs = started.elapsed().as_secs_f64(), similarity = fitted.similarity, "voice fitted");
        let draft = VoiceDraft {
            name: request.name.clone(),
            language: request.language.clone(),
            transcript: request.transcript.clone(),
            consent: true,
            processed: prepared.pcm,
            source_rate: prepared.source_rate,
            source_secs: prepared.source_secs,
            embedding,
            blend: fitted.blend,
            similarity: fitted.similarity,
            pack: fitted.pack.clone(),
            models: CLONE_MODELS.iter().map(|m| m.to_string()).collect(),
            fit_params: fit_params(&self.fit),
        };
        let meta = library.commit(pending, draft)?;
        if let Err(err) = register(registry, &meta.id, &fitted.pack) {
            // Keep disk and memory in step: a voice that cannot be spoken is not kept.
            let _ = library.delete(&meta.id);
            return Err(err);
        }
        Ok(meta)
    }

    /// Deletes a cloned voice from disk, then from Kokoro.
    pub async fn delete(
        self: &Arc<Self>,
        engine: Arc<ModelServer>,
        id: String,
    ) -> Result<VoiceMeta, CloneError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let meta = this.library()?.delete(&id)?;
            if let Some(kokoro) = engine.registry().kokoro() {
                kokoro
                    .voice_store()
                    .remove(&id)
                    .map_err(|e| CloneError::Internal(e.to_string()))?;
            }
            Ok(meta)
        })
        .await
        .map_err(|e| CloneError::Internal(e.to_string()))?
    }
}

/// Adds a pack to Kokoro's voice store under `id`.
fn register(
    registry: &ModelRegistry,
    id: &str,
    pack: &candle_core::Tensor,
) -> Result<(), CloneError> {
    let kokoro = registry.kokoro().ok_or(CloneError::NoKokoro)?;
    kokoro
        .voice_store()
        .insert(id, pack)
        .map_err(|e| CloneError::Internal(e.to_string()))
}

/// The fit parameters as they enter the voice digest.
fn fit_params(fit: &FitOptions) -> String {
    format!(
        "kokoro;budget={};iterations={};regularisation={};seed={}",
        fit.time_budget_secs, fit.max_iterations, fit.regularisation, fit.seed
    )
}

/// Retry hint for a busy upload queue.
pub const BUSY_RETRY: Duration = Duration::from_secs(5);

/// Opens the voice library of `state` and registers its voices (at start-up, off the async threads).
pub async fn open_voices(state: crate::AppState) -> Result<crate::AppState, crate::StartError> {
    let voices = state.voices.clone();
    let engine = state.speech.engine().clone();
    let storage_dir = state.config.storage_dir.clone();
    let opened = tokio::task::spawn_blocking(move || voices.open(&storage_dir, engine.registry()))
        .await?
        .map_err(|err| crate::StartError::Storage {
            path: state.config.storage_dir.join("voices"),
            source: std::io::Error::other(err.to_string()),
        })?;
    // Cache keys of a cloned voice change whenever its digest does.
    for meta in state.voices.list() {
        state.cache.set_voice_digest(&meta.id, &meta.digest);
    }
    tracing::info!(voices = opened, "cloned voices registered");
    Ok(state)
}
