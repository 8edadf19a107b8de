//! The model server: one process-wide set of loaded models, run on dedicated worker threads fed by a
//! bounded queue. Async code only enqueues a [`SpeechJob`] and awaits its sentences on a channel, so
//! it never blocks on a model.
//!
//! A job is one request's list of sentences. Workers take turns over the active jobs one sentence at
//! a time (round robin), so a new request's first sentence waits for one sentence of each active
//! request, not for whole texts: time to first audio stays short under concurrency, and one long
//! text cannot starve the others. Within a job, sentences run in order. The bound applies to jobs
//! not started yet; a full queue refuses new jobs at once.
//!
//! A job is abandoned (its remaining sentences counted as cancelled) when its token is cancelled, its
//! receiver is dropped (the client went away) or its deadline passes; this is checked before every
//! sentence.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tts_audio::Pcm;
use tts_models::registry::{LoadedModel, ModelRegistry};
use tts_models::{ModelError, SynthesisRequest};

use crate::metrics as m;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("queue full")]
    Overloaded { retry_after: Duration },
    #[error("request timed out")]
    TimedOut,
    #[error("request cancelled")]
    Cancelled,
    #[error("model server stopped")]
    Stopped,
    #[error("model panicked while synthesizing")]
    Panicked,
    #[error(transparent)]
    Model(#[from] ModelError),
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads, each synthesizing one sentence at a time.
    pub workers: usize,
    /// Jobs waiting for their first sentence before new ones are refused.
    pub queue_capacity: usize,
    /// What a refused client is told to wait.
    pub retry_after: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            queue_capacity: 32,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// One request's work: sentences of text in one voice.
pub struct SpeechJob {
    pub model: LoadedModel,
    pub voice: String,
    pub sentences: Vec<String>,
    pub speed: f32,
    pub cancel: CancellationToken,
    pub deadline: Instant,
}

/// One synthesized sentence.
#[derive(Debug)]
pub struct SentenceAudio {
    pub index: usize,
    pub pcm: Pcm,
    /// Time the job waited for its first sentence to start (same for every sentence of a job).
    pub queue_wait: Duration,
    pub synth_time: Duration,
}

pub type SentenceResult = Result<SentenceAudio, EngineError>;

/// A job in the rotation, with its progress.
struct ActiveJob {
    job: SpeechJob,
    enqueued: Instant,
    reply: mpsc::UnboundedSender<SentenceResult>,
    /// Index of the next sentence to synthesize.
    next: usize,
    queue_wait: Duration,
}

/// Counters the tests and `/metrics` can observe.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub sentences_synthesized: AtomicU64,
    pub sentences_cancelled: AtomicU64,
    pub jobs_rejected: AtomicU64,
    /// When the most recent sentence finished synthesizing (lets tests order events in time).
    pub last_sentence_done: Mutex<Option<Instant>>,
}

/// The rotation of active jobs, shared by the workers.
struct Rotation {
    jobs: VecDeque<ActiveJob>,
    not_started: usize,
    accepting: bool,
}

struct Scheduler {
    rotation: Mutex<Rotation>,
    available: Condvar,
}

impl Scheduler {
    /// Blocks until a job has a sentence to run; `None` once stopped and drained.
    fn take(&self) -> Option<ActiveJob> {
        let mut rotation = self.rotation.lock().ok()?;
        loop {
            if let Some(mut active) = rotation.jobs.pop_front() {
                if active.next == 0 {
                    rotation.not_started -= 1;
                    m::set_queue_depth(rotation.not_started);
                    active.queue_wait = active.enqueued.elapsed();
                    m::queue_wait(active.queue_wait);
                }
                return Some(active);
            }
            if !rotation.accepting {
                return None;
            }
            rotation = self.available.wait(rotation).ok()?;
        }
    }

    /// Puts a job with sentences left at the back of the rotation.
    fn put_back(&self, active: ActiveJob) {
        if let Ok(mut rotation) = self.rotation.lock() {
            rotation.jobs.push_back(active);
            self.available.notify_one();
        }
    }
}

pub struct ModelServer {
    registry: Arc<ModelRegistry>,
    scheduler: Arc<Scheduler>,
    capacity: usize,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stats: Arc<EngineStats>,
    config: EngineConfig,
}

impl ModelServer {
    /// Starts the worker threads over `registry`.
    pub fn start(
        registry: Arc<ModelRegistry>,
        config: EngineConfig,
    ) -> Result<Arc<Self>, EngineError> {
        let scheduler = Arc::new(Scheduler {
            rotation: Mutex::new(Rotation {
                jobs: VecDeque::new(),
                not_started: 0,
                accepting: true,
            }),
            available: Condvar::new(),
        });
        let stats = Arc::new(EngineStats::default());
        let mut handles = Vec::new();
        for worker in 0..config.workers.max(1) {
            let scheduler = scheduler.clone();
            let stats = stats.clone();
            let handle = std::thread::Builder::new()
                .name(format!("tts-worker-{worker}"))
                .spawn(move || worker_loop(&scheduler, &stats))
                .map_err(|err| EngineError::Model(ModelError::Io(err)))?;
            handles.push(handle);
        }
        Ok(Arc::new(Self {
            registry,
            scheduler,
            capacity: config.queue_capacity.max(1),
            workers: Mutex::new(handles),
            stats,
            config,
        }))
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Jobs waiting for their first sentence.
    pub fn queue_depth(&self) -> usize {
        self.scheduler
            .rotation
            .lock()
            .map(|r| r.not_started)
            .unwrap_or(0)
    }

    /// Enqueues `job`; sentences arrive on the returned channel in order, then it closes.
    /// Refuses at once with [`EngineError::Overloaded`] when the queue is full.
    pub fn submit(
        &self,
        job: SpeechJob,
    ) -> Result<mpsc::UnboundedReceiver<SentenceResult>, EngineError> {
        let (reply, receiver) = mpsc::unbounded_channel();
        let mut rotation = self
            .scheduler
            .rotation
            .lock()
            .map_err(|_| EngineError::Stopped)?;
        if !rotation.accepting {
            return Err(EngineError::Stopped);
        }
        if rotation.not_started >= self.capacity {
            self.stats.jobs_rejected.fetch_add(1, Ordering::Relaxed);
            m::job_rejected();
            return Err(EngineError::Overloaded {
                retry_after: self.config.retry_after,
            });
        }
        rotation.jobs.push_back(ActiveJob {
            job,
            enqueued: Instant::now(),
            reply,
            next: 0,
            queue_wait: Duration::ZERO,
        });
        rotation.not_started += 1;
        m::set_queue_depth(rotation.not_started);
        self.scheduler.available.notify_one();
        Ok(receiver)
    }

    /// Stops taking jobs, lets the workers finish every job already accepted, and joins them.
    pub fn shutdown(&self) {
        if let Ok(mut rotation) = self.scheduler.rotation.lock() {
            rotation.accepting = false;
        }
        self.scheduler.available.notify_all();
        let handles = self
            .workers
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        for handle in handles {
            if handle.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

/// Runs one short synthesis per model (first-call allocations, espeak initialisation), so the first
/// request is not slow. A model that cannot say "Hello." is dropped, with an error in the log.
/// Blocking: call from a plain thread or `spawn_blocking`.
pub fn warm_up(registry: ModelRegistry) -> ModelRegistry {
    registry.retain(|loaded| {
        let Some(voice) = loaded.model.voices().into_iter().next() else {
            return false;
        };
        let started = Instant::now();
        let request = SynthesisRequest::new(warm_up_text(&voice.language), voice.id.clone());
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| loaded.model.synthesize(&request)));
        match result {
            Ok(Ok(pcm)) => {
                tracing::info!(model = %loaded.id, voice = %voice.id, secs = started.elapsed().as_secs_f64(), audio_secs = pcm.duration_secs(), "warm-up synthesis done");
                true
            }
            Ok(Err(err)) => {
                tracing::error!(model = %loaded.id, voice = %voice.id, error = %err, "warm-up failed; model dropped");
                false
            }
            Err(_) => {
                tracing::error!(model = %loaded.id, voice = %voice.id, "warm-up panicked; model dropped");
                false
            }
        }
    })
}

fn warm_up_text(language: &str) -> &'static str {
    if language.starts_with("ja") {
        "こんにちは。"
    } else {
        "Hello."
    }
}

fn worker_loop(scheduler: &Scheduler, stats: &EngineStats) {
    while let Some(mut active) = scheduler.take() {
        if !run_one_sentence(&mut active, stats) {
            scheduler.put_back(active);
        }
    }
}

fn count_cancelled(stats: &EngineStats, remaining: usize) {
    if remaining > 0 {
        stats
            .sentences_cancelled
            .fetch_add(remaining as u64, Ordering::Relaxed);
        m::sentences_cancelled(remaining as u64);
    }
}

/// Synthesizes the job's next sentence; true when the job is finished (or abandoned).
fn run_one_sentence(active: &mut ActiveJob, stats: &EngineStats) -> bool {
    let total = active.job.sentences.len();
    let index = active.next;
    if index >= total {
        return true;
    }
    let abandoned = if active.job.cancel.is_cancelled() || active.reply.is_closed() {
        Some(EngineError::Cancelled)
    } else if Instant::now() >= active.job.deadline {
        Some(EngineError::TimedOut)
    } else {
        None
    };
    if let Some(reason) = abandoned {
        count_cancelled(stats, total - index);
        tracing::debug!(remaining = total - index, reason = %reason, "job abandoned");
        let _ = active.reply.send(Err(reason));
        return true;
    }
    let request = SynthesisRequest {
        text: active.job.sentences[index].clone(),
        voice: active.job.voice.clone(),
        speed: active.job.speed,
        seed: None,
    };
    let started = Instant::now();
    // A panic inside a model must fail one request, not kill the worker thread.
    let model = &active.job.model.model;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| model.synthesize(&request)))
        .map_err(|_| EngineError::Panicked)
        .and_then(|r| r.map_err(EngineError::from));
    let synth_time = started.elapsed();
    let failed = result.is_err();
    if !failed {
        stats.sentences_synthesized.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut done) = stats.last_sentence_done.lock() {
            *done = Some(Instant::now());
        }
    }
    let sent = active.reply.send(result.map(|pcm| SentenceAudio {
        index,
        pcm,
        queue_wait: active.queue_wait,
        synth_time,
    }));
    if sent.is_err() {
        count_cancelled(stats, total - index - 1);
        return true;
    }
    active.next += 1;
    failed || active.next >= total
}

#[cfg(test)]
mod tests {
    use super::*;
    use tts_models::{SpeechModel, VoiceInfo, VoiceKind};

    /// A model that takes a fixed time per sentence and records the order of what it spoke.
    struct SlowModel(Duration, Mutex<Vec<String>>);

    impl SpeechModel for SlowModel {
        fn family(&self) -> &str {
            "slow"
        }
        fn sample_rate(&self) -> u32 {
            8_000
        }
        fn voices(&self) -> Vec<VoiceInfo> {
            vec![VoiceInfo {
                id: "v".into(),
                family: "slow".into(),
                language: "en".into(),
                kind: VoiceKind::Stock,
            }]
        }
        fn synthesize(&self, request: &SynthesisRequest) -> Result<Pcm, ModelError> {
            std::thread::sleep(self.0);
            if let Ok(mut spoken) = self.1.lock() {
                spoken.push(request.text.clone());
            }
            Ok(Pcm::new(vec![0.1; request.text.len() * 10], 8_000))
        }
    }

    fn server(capacity: usize, delay_ms: u64) -> Arc<ModelServer> {
        server_and_model(capacity, delay_ms).0
    }

    fn server_and_model(capacity: usize, delay_ms: u64) -> (Arc<ModelServer>, Arc<SlowModel>) {
        let model = Arc::new(SlowModel(Duration::from_millis(delay_ms), Mutex::default()));
        let loaded = LoadedModel {
            id: "slow".into(),
            model: model.clone(),
        };
        let registry = Arc::new(ModelRegistry::from_models(vec![loaded]));
        let server = ModelServer::start(
            registry,
            EngineConfig {
                workers: 1,
                queue_capacity: capacity,
                retry_after: Duration::from_secs(3),
            },
        )
        .unwrap();
        (server, model)
    }

    fn job(server: &ModelServer, sentences: &[&str], cancel: CancellationToken) -> SpeechJob {
        SpeechJob {
            model: server.registry().models()[0].clone(),
            voice: "v".into(),
            sentences: sentences.iter().map(|s| s.to_string()).collect(),
            speed: 1.0,
            cancel,
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn sentences_come_back_in_order() {
        let server = server(4, 1);
        let mut rx = server
            .submit(job(&server, &["a", "bb", "ccc"], CancellationToken::new()))
            .unwrap();
        let mut lengths = Vec::new();
        while let Some(result) = rx.recv().await {
            let audio = result.unwrap();
            assert_eq!(audio.index, lengths.len());
            lengths.push(audio.pcm.samples.len());
        }
        assert_eq!(lengths, vec![10, 20, 30]);
    }

    #[tokio::test]
    async fn full_queue_is_refused_with_retry_after() {
        let server = server(1, 300);
        let first = server
            .submit(job(&server, &["a"], CancellationToken::new()))
            .unwrap();
        // Give the worker time to take the first job, so the second one fills the queue.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = server
            .submit(job(&server, &["b"], CancellationToken::new()))
            .unwrap();
        match server.submit(job(&server, &["c"], CancellationToken::new())) {
            Err(EngineError::Overloaded { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(3))
            }
            other => panic!("expected overload, got {:?}", other.map(|_| ())),
        }
        drop((first, second));
    }

    #[tokio::test]
    async fn cancelled_job_skips_its_remaining_sentences() {
        let server = server(4, 50);
        let cancel = CancellationToken::new();
        let mut rx = server
            .submit(job(&server, &["a", "b", "c", "d", "e"], cancel.clone()))
            .unwrap();
        assert!(rx.recv().await.unwrap().is_ok());
        cancel.cancel();
        let mut cancelled = false;
        while let Some(result) = rx.recv().await {
            cancelled |= matches!(result, Err(EngineError::Cancelled));
        }
        assert!(cancelled);
        assert!(server.stats().sentences_cancelled.load(Ordering::Relaxed) >= 2);
        assert!(server.stats().sentences_synthesized.load(Ordering::Relaxed) < 5);
    }

    #[tokio::test]
    async fn a_new_job_is_served_between_the_sentences_of_a_long_one() {
        let (server, model) = server_and_model(4, 40);
        let mut long = server
            .submit(job(&server, &["a1", "a2", "a3"], CancellationToken::new()))
            .unwrap();
        let mut short = server
            .submit(job(&server, &["b1"], CancellationToken::new()))
            .unwrap();
        assert!(short.recv().await.unwrap().is_ok());
        while long.recv().await.is_some() {}
        let spoken = model.1.lock().unwrap().clone();
        assert_eq!(spoken, vec!["a1", "b1", "a2", "a3"]);
    }

    #[tokio::test]
    async fn dropped_receiver_cancels_the_rest() {
        let server = server(4, 50);
        let mut rx = server
            .submit(job(
                &server,
                &["a", "b", "c", "d"],
                CancellationToken::new(),
            ))
            .unwrap();
        assert!(rx.recv().await.unwrap().is_ok());
        drop(rx);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(server.stats().sentences_cancelled.load(Ordering::Relaxed) >= 2);
    }
}
