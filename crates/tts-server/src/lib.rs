//! `tts-server`: serves every model in a models directory over REST, chunked streaming, SSE,
//! WebSocket and an OpenAI-compatible API.
//!
//! Layers, one way: `routes` (HTTP only) → `speech` (sentences, joining, encoding) → `engine`
//! (worker threads, bounded queue) → `tts_models` (tensors). Handlers never block: model work runs
//! on the engine's threads, encoding in `spawn_blocking`.

pub mod auth;
pub mod batch;
pub mod blends;
pub mod cache;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod joiner;
pub mod metrics;
pub mod openapi;
pub mod pregen;
pub mod routes;
pub mod speech;
pub mod state;
pub mod synth;
pub mod voice_library;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tts_models::registry::{ModelRegistry, RegistryError};

pub use config::ServerConfig;
pub use engine::ModelServer;
pub use state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("no model in {0} passed its warm-up synthesis (see the log)")]
    NoModelWorks(std::path::PathBuf),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("creating storage directory {path}: {source}")]
    Storage {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loader task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Device(#[from] tts_models::device::DeviceError),
    #[error(transparent)]
    Accounts(#[from] tts_accounts::AccountsError),
    #[error("opening the audio cache: {0}")]
    Cache(#[from] tts_cache::CacheError),
    #[error("voice blend {name:?} in the config: {message}")]
    Blend { name: String, message: String },
}

/// Loads every model (once, off the async threads), warms them up and starts the workers.
pub async fn build_state(config: ServerConfig) -> Result<AppState, StartError> {
    tokio::fs::create_dir_all(&config.storage_dir)
        .await
        .map_err(|source| StartError::Storage {
            path: config.storage_dir.clone(),
            source,
        })?;
    let models_dir = config.models_dir.clone();
    let engine_config = config.engine();
    let (device_choice, model_dtype) = (config.device, config.dtype);
    let engine = tokio::task::spawn_blocking(move || -> Result<Arc<ModelServer>, StartError> {
        let device = device_choice.open()?;
        let dtype = model_dtype.check_for(&device)?;
        tracing::info!(device = %tts_models::device::describe(&device), ?dtype, "loading models");
        let registry = ModelRegistry::load_dir_with_dtype(&models_dir, &device, dtype)?;
        let registry = engine::warm_up(registry);
        if registry.models().is_empty() {
            return Err(StartError::NoModelWorks(models_dir));
        }
        Ok(ModelServer::start(Arc::new(registry), engine_config)?)
    })
    .await??;
    let state = AppState::new(engine, config, metrics::install());
    let state = cache::with_cache(state).await?;
    let state = voice_library::open_voices(state).await?;
    let state = blends::register(state)?;
    let mut state = auth::with_accounts(state)?;
    let batches = batch::BatchJobs::open(&state.config).map_err(|source| StartError::Storage {
        path: state.config.storage_dir.join("batches"),
        source,
    })?;
    state.batches = Arc::new(batches);
    Ok(state)
}

/// Serves until `signal` resolves, then drains: `/ready` turns 503, new connections stop, in-flight
/// responses and WebSocket utterances finish (up to the grace period), queued jobs complete.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = routes::router(state.clone());
    auth::spawn_usage_flusher(state.usage.clone(), state.shutdown.clone());
    pregen::warm_on_start(&state);
    state.batches.resume(&state);
    let draining = state.clone();
    let on_signal = async move {
        signal.await;
        tracing::info!("shutdown requested; draining in-flight requests");
        draining.ready.store(false, Ordering::Relaxed);
        draining.shutdown.cancel();
    };
    let metrics = state.metrics.clone();
    // Histograms are kept in buffers the exporter drains; do it even when nobody scrapes.
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.run_upkeep();
        }
    });
    let grace = state.config.shutdown_grace();
    let server = axum::serve(listener, app).with_graceful_shutdown(on_signal);
    let expired = async {
        state.shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result?,
        () = expired => tracing::warn!(?grace, "grace period over; open responses are cut"),
    }
    state.sessions.close();
    if tokio::time::timeout(grace, state.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("WebSocket sessions still open after the grace period");
    }
    upkeep.abort();
    if let Err(err) = state.usage.flush() {
        tracing::error!(error = %err, "writing usage at shutdown");
    }
    let engine = state.speech.engine().clone();
    tokio::task::spawn_blocking(move || engine.shutdown())
        .await
        .ok();
    Ok(())
}
