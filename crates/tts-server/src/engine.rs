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
//! Dynamic batching: for a model whose [`SpeechModel::batches`] is true, a worker takes the next
//! sentence of up to `max_batch_size` jobs on that model (the front job and the next ones of the
//! same model in rotation order), waiting at most `max_batch_wait` for more to arrive when fewer are
//! ready, and synthesizes them in one [`SpeechModel::synthesize_batch`] call. Each job still gets
//! one sentence per turn, so the round robin and the order within a job are kept. A job counts as
//! queued (against `queue_capacity`) until its first sentence starts, batch forming included.
//!
//! A job is abandoned (its remaining sentences counted as cancelled) when its token is cancelled, its
//! receiver is dropped (the client went away) or its deadline passes; this is checked for each job
//! before every sentence, in a batch too. A panic inside a model fails the requests of that call only.

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
use tts_models::{ModelError, SpeechModel, SynthesisRequest};

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
    /// Most sentences (of different jobs) one model call synthesizes together; 1 turns batching off.
    pub max_batch_size: usize,
    /// How long a worker holding fewer than `max_batch_size` sentences waits for more.
    pub max_batch_wait: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            queue_capacity: 32,
            retry_after: Duration::from_secs(1),
            max_batch_size: 8,
            max_batch_wait: Duration::from_millis(5),
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
    /// Time of the model call that made this sentence (the whole batch's, when batched).
    pub synth_time: Duration,
}

pub type SentenceResult = Result<SentenceAudio, EngineError>;

/// How a worker forms batches (from [`EngineConfig`]).
#[derive(Debug, Clone, Copy)]
struct BatchLimits {
    max_size: usize,
    max_wait: Duration,
}

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
    /// Model calls made, and the most sentences one of them synthesized.
    pub batches_run: AtomicU64,
    pub largest_batch: AtomicU64,
}

/// The rotation of active jobs, shared by the workers.
struct Rotation {
    jobs: VecDeque<ActiveJob>,
    not_started: usize,
    accepting: bool,
}

struct Scheduler {
    rotation: Mutex<Rotation>,
    /// Idle workers wait here; one is woken per job that becomes ready.
    available: Condvar,
    /// Workers forming a batch wait here; all are woken by every job that becomes ready.
    arrived: Condvar,
}

impl Rotation {
    /// Moves jobs on `model` from the rotation into `batch`, in rotation order, until it holds `max`.
    fn take_same_model(
        &mut self,
        model: &Arc<dyn SpeechModel>,
        batch: &mut Vec<ActiveJob>,
        max: usize,
    ) {
        let mut i = 0;
        while batch.len() < max && i < self.jobs.len() {
            if Arc::ptr_eq(&self.jobs[i].job.model.model, model) {
                if let Some(active) = self.jobs.remove(i) {
                    batch.push(active);
                }
            } else {
                i += 1;
            }
        }
    }
}

impl Scheduler {
    /// Blocks until a job has a sentence to run, then gathers up to `limits.max_size` jobs on the
    /// same model when it batches (waiting at most `limits.max_wait` for more); `None` once stopped
    /// and drained.
    fn take(&self, limits: BatchLimits) -> Option<Vec<ActiveJob>> {
        let mut rotation = self.rotation.lock().ok()?;
        let first = loop {
            if let Some(active) = rotation.jobs.pop_front() {
                break active;
            }
            if !rotation.accepting {
                return None;
            }
            rotation = self.available.wait(rotation).ok()?;
        };
        let model = first.job.model.model.clone();
        let max = if model.batches() {
            limits.max_size.max(1)
        } else {
            1
        };
        let mut batch = vec![first];
        let until = Instant::now() + limits.max_wait;
        loop {
            rotation.take_same_model(&model, &mut batch, max);
            let now = Instant::now();
            if batch.len() >= max || !rotation.accepting || now >= until {
                break;
            }
            rotation = self.arrived.wait_timeout(rotation, until - now).ok()?.0;
        }
        if !rotation.jobs.is_empty() {
            // Jobs of other models may have arrived while this worker waited: pass the wake-up on.
            self.available.notify_one();
        }
        for active in batch.iter_mut().filter(|a| a.next == 0) {
            rotation.not_started -= 1;
            active.queue_wait = active.enqueued.elapsed();
            m::queue_wait(active.queue_wait);
        }
        m::set_queue_depth(rotation.not_started);
        Some(batch)
    }

    /// Adds jobs at the back of the rotation (new ones, or ones with sentences left).
    fn push_back(&self, rotation: &mut Rotation, jobs: impl IntoIterator<Item = ActiveJob>) {
        let before = rotation.jobs.len();
        rotation.jobs.extend(jobs);
        for _ in before..rotation.jobs.len() {
            self.available.notify_one();
        }
        if rotation.jobs.len() > before {
            self.arrived.notify_all();
        }
    }

    /// Puts jobs with sentences left at the back of the rotation, in their order.
    fn put_back(&self, jobs: Vec<ActiveJob>) {
        if let Ok(mut rotation) = self.rotation.lock() {
            self.push_back(&mut rotation, jobs);
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
            arrived: Condvar::new(),
        });
        let stats = Arc::new(EngineStats::default());
        let limits = BatchLimits {
            max_size: config.max_batch_size.max(1),
            max_wait: config.max_batch_wait,
        };
        let mut handles = Vec::new();
        for worker in 0..config.workers.max(1) {
            let scheduler = scheduler.clone();
            let stats = stats.clone();
            let handle = std::thread::Builder::new()
                .name(format!("tts-worker-{worker}"))
                .spawn(move || worker_loop(&scheduler, &stats, limits))
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
        let active = ActiveJob {
            job,
            enqueued: Instant::now(),
            reply,
            next: 0,
            queue_wait: Duration::ZERO,
        };
        self.scheduler.push_back(&mut rotation, [active]);
        rotation.not_started += 1;
        m::set_queue_depth(rotation.not_started);
        Ok(receiver)
    }

    /// Stops taking jobs, lets the workers finish every job already accepted, and joins them.
    pub fn shutdown(&self) {
        if let Ok(mut rotation) = self.scheduler.rotation.lock() {
            rotation.accepting = false;
        }
        self.scheduler.available.notify_all();
        self.scheduler.arrived.notify_all();
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

fn worker_loop(scheduler: &Scheduler, stats: &EngineStats, limits: BatchLimits) {
    while let Some(batch) = scheduler.take(limits) {
        let unfinished = run_batch(batch, stats);
        scheduler.put_back(unfinished);
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

impl ActiveJob {
    /// Ends the job early when it is cancelled, its client is gone or its deadline has passed;
    /// true when it was abandoned.
    fn abandon_if_done(&self, stats: &EngineStats) -> bool {
        let remaining = self.job.sentences.len().saturating_sub(self.next);
        if remaining == 0 {
            return true;
        }
        let reason = if self.job.cancel.is_cancelled() || self.reply.is_closed() {
            EngineError::Cancelled
        } else if Instant::now() >= self.job.deadline {
            EngineError::TimedOut
        } else {
            return false;
        };
        count_cancelled(stats, remaining);
        tracing::debug!(remaining, reason = %reason, "job abandoned");
        let _ = self.reply.send(Err(reason));
        true
    }

    fn next_request(&self) -> SynthesisRequest {
        SynthesisRequest {
            text: self.job.sentences[self.next].clone(),
            voice: self.job.voice.clone(),
            speed: self.job.speed,
            seed: None,
        }
    }

    /// Sends one sentence's result; true when the job is finished (or its client is gone).
    fn deliver(
        &mut self,
        result: Result<Pcm, EngineError>,
        synth_time: Duration,
        stats: &EngineStats,
    ) -> bool {
        let (index, total) = (self.next, self.job.sentences.len());
        let failed = result.is_err();
        if !failed {
            stats.sentences_synthesized.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut done) = stats.last_sentence_done.lock() {
                *done = Some(Instant::now());
            }
        }
        let sent = self.reply.send(result.map(|pcm| SentenceAudio {
            index,
            pcm,
            queue_wait: self.queue_wait,
            synth_time,
        }));
        if sent.is_err() {
            count_cancelled(stats, total - index - 1);
            return true;
        }
        self.next += 1;
        failed || self.next >= total
    }
}

/// Synthesizes the next sentence of every job in `batch` (all on one model) in one model call, and
/// returns the jobs that have sentences left, in order.
fn run_batch(batch: Vec<ActiveJob>, stats: &EngineStats) -> Vec<ActiveJob> {
    let live: Vec<ActiveJob> = batch
        .into_iter()
        .filter(|active| !active.abandon_if_done(stats))
        .collect();
    let Some(first) = live.first() else {
        return live;
    };
    let model = first.job.model.clone();
    let requests: Vec<SynthesisRequest> = live.iter().map(ActiveJob::next_request).collect();
    let started = Instant::now();
    // A panic inside a model must fail this call's requests, not kill the worker thread.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match requests.as_slice() {
        [one] => vec![model.model.synthesize(one)],
        many => model.model.synthesize_batch(many),
    }));
    let synth_time = started.elapsed();
    stats.batches_run.fetch_add(1, Ordering::Relaxed);
    stats
        .largest_batch
        .fetch_max(requests.len() as u64, Ordering::Relaxed);
    m::batch_size(&model.id, requests.len());
    let mut results: Vec<Result<Pcm, EngineError>> = match outcome {
        Ok(results) => results
            .into_iter()
            .map(|r| r.map_err(EngineError::from))
            .collect(),
        Err(_) => Vec::new(),
    };
    // After a panic (or a model breaking the one-result-per-request contract) the rest fail.
    results.resize_with(live.len(), || Err(EngineError::Panicked));
    live.into_iter()
        .zip(results)
        .filter_map(|(mut active, result)| {
            let finished = active.deliver(result, synth_time, stats);
            (!finished).then_some(active)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tts_models::{SpeechModel, VoiceInfo, VoiceKind};

    /// The single voice `v` of a test model.
    fn one_voice(family: &str) -> Vec<VoiceInfo> {
        vec![VoiceInfo {
            id: "v".into(),
            family: family.into(),
            language: "en".into(),
            kind: VoiceKind::Stock,
        }]
    }

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
            one_voice("slow")
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
        let config = EngineConfig {
            workers: 1,
            queue_capacity: capacity,
            retry_after: Duration::from_secs(3),
            ..EngineConfig::default()
        };
        (start_with(model.clone(), "slow", config), model)
    }

    /// A model server over `model` alone.
    fn start_with(model: Arc<dyn SpeechModel>, id: &str, config: EngineConfig) -> Arc<ModelServer> {
        let loaded = LoadedModel {
            id: id.into(),
            model,
        };
        ModelServer::start(Arc::new(ModelRegistry::from_models(vec![loaded])), config).unwrap()
    }

    /// A model that batches: each call takes a fixed time whatever its size, records the texts it
    /// got together, and panics on the text "boom".
    #[derive(Default)]
    struct BatchingModel {
        delay: Duration,
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl BatchingModel {
        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl SpeechModel for BatchingModel {
        fn family(&self) -> &str {
            "batching"
        }
        fn sample_rate(&self) -> u32 {
            8_000
        }
        fn voices(&self) -> Vec<VoiceInfo> {
            one_voice("batching")
        }
        fn synthesize(&self, request: &SynthesisRequest) -> Result<Pcm, ModelError> {
            self.synthesize_batch(std::slice::from_ref(request))
                .pop()
                .expect("one result per request")
        }
        fn synthesize_batch(&self, requests: &[SynthesisRequest]) -> Vec<Result<Pcm, ModelError>> {
            std::thread::sleep(self.delay);
            let texts: Vec<String> = requests.iter().map(|r| r.text.clone()).collect();
            self.calls.lock().unwrap().push(texts.clone());
            assert!(!texts.iter().any(|t| t == "boom"), "model failure");
            texts
                .iter()
                .map(|t| Ok(Pcm::new(vec![0.1; t.len() * 10], 8_000)))
                .collect()
        }
        fn batches(&self) -> bool {
            true
        }
    }

    fn batching_server(
        max_batch_size: usize,
        max_batch_wait: Duration,
        delay_ms: u64,
    ) -> (Arc<ModelServer>, Arc<BatchingModel>) {
        let model = Arc::new(BatchingModel {
            delay: Duration::from_millis(delay_ms),
            ..BatchingModel::default()
        });
        let config = EngineConfig {
            max_batch_size,
            max_batch_wait,
            ..EngineConfig::default()
        };
        (start_with(model.clone(), "batching", config), model)
    }

    /// Every result of a job: the sample counts of its sentences, or the first error.
    async fn collect(
        mut rx: mpsc::UnboundedReceiver<SentenceResult>,
    ) -> Result<Vec<usize>, EngineError> {
        let mut lengths = Vec::new();
        while let Some(result) = rx.recv().await {
            lengths.push(result?.pcm.samples.len());
        }
        Ok(lengths)
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

    #[tokio::test]
    async fn concurrent_jobs_share_one_model_call_and_get_their_own_audio() {
        let (server, model) = batching_server(8, Duration::from_millis(300), 20);
        let texts = ["a", "bb", "ccc", "dddd"];
        let receivers: Vec<_> = texts
            .iter()
            .map(|t| {
                server
                    .submit(job(&server, &[*t], CancellationToken::new()))
                    .unwrap()
            })
            .collect();
        for (rx, text) in receivers.into_iter().zip(texts) {
            assert_eq!(collect(rx).await.unwrap(), vec![text.len() * 10]);
        }
        assert_eq!(model.calls(), vec![vec!["a", "bb", "ccc", "dddd"]]);
        assert_eq!(server.stats().largest_batch.load(Ordering::Relaxed), 4);
        assert_eq!(server.stats().batches_run.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn batches_hold_at_most_max_batch_size_sentences() {
        let (server, model) = batching_server(3, Duration::from_millis(300), 5);
        let receivers: Vec<_> = (0..7)
            .map(|i| {
                let text = format!("s{i}");
                server
                    .submit(job(&server, &[text.as_str()], CancellationToken::new()))
                    .unwrap()
            })
            .collect();
        for rx in receivers {
            assert_eq!(collect(rx).await.unwrap().len(), 1);
        }
        let sizes: Vec<usize> = model.calls().iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 7);
        assert!(sizes.iter().all(|&n| n <= 3), "batch sizes {sizes:?}");
        assert_eq!(sizes[0], 3, "batch sizes {sizes:?}");
    }

    #[tokio::test]
    async fn a_worker_waits_up_to_max_batch_wait_for_more_sentences() {
        let wait = Duration::from_millis(150);
        let (server, model) = batching_server(4, wait, 1);
        // A job that arrives within the wait joins the first one's batch.
        let first = server
            .submit(job(&server, &["a"], CancellationToken::new()))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let second = server
            .submit(job(&server, &["b"], CancellationToken::new()))
            .unwrap();
        collect(first).await.unwrap();
        collect(second).await.unwrap();
        assert_eq!(model.calls(), vec![vec!["a", "b"]]);
        // A lone job is held for the wait, then synthesized alone.
        let submitted = Instant::now();
        let alone = server
            .submit(job(&server, &["c"], CancellationToken::new()))
            .unwrap();
        collect(alone).await.unwrap();
        assert!(submitted.elapsed() >= wait, "the lone job was not held");
        assert_eq!(model.calls()[1], vec!["c"]);
    }

    #[tokio::test]
    async fn batch_size_one_turns_batching_off() {
        let (server, model) = batching_server(1, Duration::from_millis(300), 5);
        let receivers: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|t| {
                server
                    .submit(job(&server, &[*t], CancellationToken::new()))
                    .unwrap()
            })
            .collect();
        for rx in receivers {
            collect(rx).await.unwrap();
        }
        assert_eq!(model.calls(), vec![vec!["a"], vec!["b"], vec!["c"]]);
    }

    #[tokio::test]
    async fn batched_jobs_keep_their_turns_and_sentence_order() {
        let (server, model) = batching_server(2, Duration::from_millis(300), 5);
        let jobs = [["a1", "a2"], ["b1", "b2"], ["c1", "c2"]];
        let receivers: Vec<_> = jobs
            .iter()
            .map(|s| {
                server
                    .submit(job(&server, s, CancellationToken::new()))
                    .unwrap()
            })
            .collect();
        for rx in receivers {
            assert_eq!(collect(rx).await.unwrap(), vec![20, 20]);
        }
        // Round robin over jobs, one sentence of each per batch.
        assert_eq!(
            model.calls(),
            vec![vec!["a1", "b1"], vec!["c1", "a2"], vec!["b2", "c2"]]
        );
    }

    #[tokio::test]
    async fn a_job_cancelled_inside_a_batch_stops_while_the_others_finish() {
        let (server, model) = batching_server(4, Duration::from_millis(20), 40);
        let cancel = CancellationToken::new();
        let mut cancelled = server
            .submit(job(
                &server,
                &["a1", "a2", "a3", "a4", "a5"],
                cancel.clone(),
            ))
            .unwrap();
        let other = server
            .submit(job(
                &server,
                &["b1", "b2", "b3", "b4", "b5"],
                CancellationToken::new(),
            ))
            .unwrap();
        assert!(cancelled.recv().await.unwrap().is_ok());
        cancel.cancel();
        let mut saw_cancel = false;
        while let Some(result) = cancelled.recv().await {
            saw_cancel |= matches!(result, Err(EngineError::Cancelled));
        }
        assert!(saw_cancel);
        assert_eq!(collect(other).await.unwrap(), vec![20; 5]);
        let calls = model.calls();
        assert_eq!(calls[0], vec!["a1", "b1"]);
        let spoken_a = calls.concat().iter().filter(|t| t.starts_with('a')).count();
        assert!(
            spoken_a < 5,
            "all of the cancelled job was spoken: {calls:?}"
        );
        assert!(server.stats().sentences_cancelled.load(Ordering::Relaxed) >= 2);
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_its_own_jobs_only() {
        let (server, model) = batching_server(4, Duration::from_millis(200), 5);
        let good = server
            .submit(job(&server, &["fine"], CancellationToken::new()))
            .unwrap();
        let bad = server
            .submit(job(&server, &["boom"], CancellationToken::new()))
            .unwrap();
        assert!(matches!(collect(good).await, Err(EngineError::Panicked)));
        assert!(matches!(collect(bad).await, Err(EngineError::Panicked)));
        // The worker survived: the next job is served.
        let later = server
            .submit(job(&server, &["later"], CancellationToken::new()))
            .unwrap();
        assert_eq!(collect(later).await.unwrap(), vec![50]);
        assert_eq!(model.calls(), vec![vec!["fine", "boom"], vec!["later"]]);
    }
}
