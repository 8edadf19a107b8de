//! Batch jobs (`POST /v1/batch`): many texts synthesized in the background into the cache, with
//! bounded concurrency shared by every job. An item that fails is reported and the others go on.
//!
//! Jobs are durable: each is a JSON file in `<storage_dir>/batches/`, written (temp file, fsync,
//! rename) before the job is acknowledged and again as each item finishes. A server that stops
//! with items pending picks them up again at start; finished jobs are kept for an hour.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tts_accounts::Role;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::config::ServerConfig;
use crate::error::{ApiError, ErrorDetail};
use crate::routes::tts::TtsRequest;
use crate::speech::{RequestContext, SpeechParams};
use crate::state::AppState;

/// Finished jobs are forgotten (and their files removed) after this long.
const KEEP_FINISHED: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl ItemStatus {
    fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// An item's state and, once done, where its audio is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    pub status: ItemStatus,
    pub characters: usize,
    /// `miss` (synthesized now), `hit-memory`, `hit-disk`, … when the cache answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// `GET` this for the audio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    /// Every item is done or failed.
    Completed,
}

/// `GET /v1/batch/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub status: JobStatus,
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    /// Items not finished yet.
    pub pending: usize,
    pub items: Vec<ItemResult>,
}

/// A job as stored in `<storage_dir>/batches/<id>.json`.
#[derive(Debug, Serialize, Deserialize)]
struct JobRecord {
    id: String,
    /// The owner's key id (`None` when auth was off) and role.
    owner_key: Option<String>,
    owner_role: Role,
    /// Seconds since the Unix epoch.
    created: u64,
    finished: Option<u64>,
    requests: Vec<TtsRequest>,
    items: Vec<ItemResult>,
}

struct Job {
    id: String,
    owner: Caller,
    created: u64,
    requests: Vec<TtsRequest>,
    items: Mutex<Vec<ItemResult>>,
    finished: Mutex<Option<u64>>,
    /// Where the job is stored; `None` for a server without storage.
    path: Option<PathBuf>,
    /// One write of the file at a time, each with the latest state.
    writing: tokio::sync::Mutex<()>,
}

impl Job {
    fn view(&self) -> JobView {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let count = |s: ItemStatus| items.iter().filter(|i| i.status == s).count();
        let (done, failed) = (count(ItemStatus::Done), count(ItemStatus::Failed));
        let pending = items.len() - done - failed;
        let status = if pending == 0 {
            JobStatus::Completed
        } else if count(ItemStatus::Queued) == pending {
            JobStatus::Queued
        } else {
            JobStatus::Running
        };
        JobView {
            id: self.id.clone(),
            status,
            total: items.len(),
            done,
            failed,
            pending,
            items,
        }
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut ItemResult)) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(item) = items.get_mut(index) {
            change(item);
        }
    }

    fn is_expired(&self, now: u64) -> bool {
        let finished = *self.finished.lock().unwrap_or_else(|e| e.into_inner());
        finished.is_some_and(|at| now.saturating_sub(at) >= KEEP_FINISHED.as_secs())
    }

    fn record(&self) -> JobRecord {
        JobRecord {
            id: self.id.clone(),
            owner_key: self.owner.key_id.clone(),
            owner_role: self.owner.role,
            created: self.created,
            finished: *self.finished.lock().unwrap_or_else(|e| e.into_inner()),
            requests: self.requests.clone(),
            items: self.items.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Writes the job's current state to its file (temp file, fsync, rename, fsync of the
    /// directory), so a crash leaves either the previous state or this one.
    async fn persist(&self) -> Result<(), ApiError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let _one_writer = self.writing.lock().await;
        let json = serde_json::to_vec_pretty(&self.record())
            .map_err(|err| ApiError::Internal(format!("encoding batch job: {err}")))?;
        tokio::task::spawn_blocking(move || write_atomically(&path, &json))
            .await
            .map_err(|err| ApiError::Internal(err.to_string()))?
            .map_err(|err| ApiError::Internal(format!("storing batch job: {err}")))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    std::fs::File::open(dir)?.sync_all()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The jobs of this server and the permits their items share.
pub struct BatchJobs {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    permits: Arc<Semaphore>,
    max_items: usize,
    /// `<storage_dir>/batches`; `None` keeps jobs in memory only (the placeholder state).
    dir: Option<PathBuf>,
}

impl Default for BatchJobs {
    fn default() -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(1)),
            max_items: ServerConfig::default().batch_max_items,
            dir: None,
        }
    }
}

impl BatchJobs {
    /// Opens `<storage_dir>/batches`, loading the jobs stored there. Expired jobs are removed; a
    /// file that does not parse is renamed `*.corrupt` and skipped, never deleted.
    pub fn open(config: &ServerConfig) -> std::io::Result<Self> {
        let dir = config.storage_dir.join("batches");
        std::fs::create_dir_all(&dir)?;
        let now = now_unix();
        let mut jobs = HashMap::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record = std::fs::read(&path)
                .map_err(|err| err.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<JobRecord>(&bytes).map_err(|err| err.to_string())
                });
            let record = match record {
                Ok(record) if record.requests.len() == record.items.len() => record,
                Ok(_) | Err(_) => {
                    tracing::error!(path = %path.display(), "unreadable batch job file; renamed *.corrupt");
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                    continue;
                }
            };
            let job = Job {
                id: record.id,
                owner: Caller {
                    key_id: record.owner_key,
                    role: record.owner_role,
                },
                created: record.created,
                requests: record.requests,
                items: Mutex::new(record.items),
                finished: Mutex::new(record.finished),
                path: Some(path.clone()),
                writing: tokio::sync::Mutex::new(()),
            };
            if job.is_expired(now) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            jobs.insert(job.id.clone(), Arc::new(job));
        }
        if !jobs.is_empty() {
            tracing::info!(jobs = jobs.len(), dir = %dir.display(), "batch jobs loaded");
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
            permits: Arc::new(Semaphore::new(config.batch_concurrency.max(1))),
            max_items: config.batch_max_items.max(1),
            dir: Some(dir),
        })
    }

    pub fn max_items(&self) -> usize {
        self.max_items
    }

    /// Validates every item, stores the job and starts its items; returns the job's first view.
    /// Items that fail validation are reported as failed; the request fails only when it is
    /// empty or too large, or the job cannot be stored.
    pub async fn submit(
        &self,
        state: &AppState,
        caller: Caller,
        requests: Vec<TtsRequest>,
    ) -> Result<JobView, ApiError> {
        if requests.is_empty() {
            return Err(ApiError::invalid("empty_batch", "items", "items is empty"));
        }
        if requests.len() > self.max_items {
            return Err(ApiError::invalid(
                "batch_too_large",
                "items",
                format!(
                    "items has {} entries; the limit is {}",
                    requests.len(),
                    self.max_items
                ),
            ));
        }
        let items = requests
            .iter()
            .enumerate()
            .map(|(index, request)| ItemResult {
                index,
                status: ItemStatus::Queued,
                characters: request.text.chars().count(),
                cache: None,
                cache_key: None,
                url: None,
                audio_seconds: None,
                error: None,
            })
            .collect();
        let id = uuid::Uuid::new_v4().to_string();
        let job = Arc::new(Job {
            path: self.dir.as_ref().map(|dir| dir.join(format!("{id}.json"))),
            id,
            owner: caller,
            created: now_unix(),
            requests,
            items: Mutex::new(items),
            finished: Mutex::new(None),
            writing: tokio::sync::Mutex::new(()),
        });
        let work = validate_pending(state, &job);
        job.persist().await?;
        self.forget_expired();
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id.clone(), job.clone());
        tracing::info!(job = %job.id, items = job.requests.len(), valid = work.len(), "batch job queued");
        let view = job.view();
        tokio::spawn(run_job(state.clone(), self.permits.clone(), job, work));
        Ok(view)
    }

    /// Starts the pending items of the jobs loaded from disk (a server stopped before finishing
    /// them). Called once the server can synthesize.
    pub fn resume(&self, state: &AppState) {
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|job| job.finished.lock().map(|f| f.is_none()).unwrap_or(false))
            .cloned()
            .collect();
        for job in jobs {
            job.items
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter_mut()
                .filter(|item| item.status == ItemStatus::Running)
                .for_each(|item| item.status = ItemStatus::Queued);
            let work = validate_pending(state, &job);
            tracing::info!(job = %job.id, pending = work.len(), "batch job resumed");
            tokio::spawn(run_job(state.clone(), self.permits.clone(), job, work));
        }
    }

    fn forget_expired(&self) {
        let now = now_unix();
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.retain(|_, job| {
            let expired = job.is_expired(now);
            if let (true, Some(path)) = (expired, &job.path) {
                let _ = std::fs::remove_file(path);
            }
            !expired
        });
    }

    /// The job, when `caller` may see it (its owner, or an admin); otherwise 404, so ids of other
    /// keys' jobs cannot be probed.
    pub fn view(&self, id: &str, caller: &Caller) -> Result<JobView, ApiError> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = jobs.get(id).ok_or(ApiError::NotFound)?;
        if !caller.is_admin() && job.owner.key_id != caller.key_id {
            return Err(ApiError::NotFound);
        }
        Ok(job.view())
    }
}

/// Validates the job's unfinished items (against the voices loaded now); those that fail are
/// marked failed, the rest returned to run.
fn validate_pending(state: &AppState, job: &Job) -> Vec<(usize, SpeechParams)> {
    let mut work = Vec::new();
    let mut items = job.items.lock().unwrap_or_else(|e| e.into_inner());
    for (item, request) in items.iter_mut().zip(&job.requests) {
        if item.status.is_finished() {
            continue;
        }
        match state.validate(request.input(state.config.max_text_chars)) {
            Ok(params) => work.push((item.index, params)),
            Err(err) => {
                item.status = ItemStatus::Failed;
                item.error = Some(item_error(&err, item.index));
            }
        }
    }
    work
}

fn item_error(err: &ApiError, index: usize) -> ErrorDetail {
    let mut detail = err.body().error;
    detail.message = format!("items[{index}]: {}", detail.message);
    detail
}

async fn run_job(
    state: AppState,
    permits: Arc<Semaphore>,
    job: Arc<Job>,
    work: Vec<(usize, SpeechParams)>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, params) in work {
        let (state, permits, job) = (state.clone(), permits.clone(), job.clone());
        tasks.spawn(async move {
            // Closed only if the server is dropping the semaphore: nothing left to do.
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            job.update(index, |item| item.status = ItemStatus::Running);
            let ctx = RequestContext::new("/v1/batch");
            match synthesize_item(&state, &params, &ctx).await {
                Ok(done) => {
                    state.usage.record(
                        &job.owner,
                        done.synthesized_characters,
                        done.cached_characters,
                        done.audio_seconds,
                    );
                    job.update(index, |item| {
                        item.status = ItemStatus::Done;
                        item.audio_seconds = Some(done.audio_seconds);
                        item.url = done.cache_key.as_ref().map(|k| format!("/v1/audio/{k}"));
                        item.cache_key = done.cache_key;
                        item.cache = Some(done.cache_status);
                    });
                }
                // Cut short by a shutdown, not failed: the next start runs it again.
                Err(ApiError::NotReady) if state.shutdown.is_cancelled() => {
                    job.update(index, |item| item.status = ItemStatus::Queued);
                }
                Err(err) => {
                    tracing::info!(job = %job.id, index, error = %err, "batch item failed");
                    job.update(index, |item| {
                        item.status = ItemStatus::Failed;
                        item.error = Some(item_error(&err, index));
                    });
                }
            }
            if let Err(err) = job.persist().await {
                tracing::error!(job = %job.id, error = %err, "storing batch progress");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    if job.view().pending > 0 {
        // Items left by a shutdown: the job stays open, for the next start to resume.
        if let Err(err) = job.persist().await {
            tracing::error!(job = %job.id, error = %err, "storing interrupted batch job");
        }
        return;
    }
    *job.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(now_unix());
    if let Err(err) = job.persist().await {
        tracing::error!(job = %job.id, error = %err, "storing finished batch job");
    }
    let view = job.view();
    tracing::info!(job = %job.id, done = view.done, failed = view.failed, "batch job finished");
}
/// What one item (of a batch or a pre-generation run) produced.
#[derive(Debug, Clone)]
pub struct ItemAudio {
    /// `miss` when synthesized now, otherwise the tier that answered (`hit-disk`, …).
    pub cache_status: String,
    pub cache_key: Option<String>,
    pub synthesized_characters: usize,
    pub cached_characters: usize,
    pub audio_seconds: f64,
}

impl ItemAudio {
    pub fn was_cached(&self) -> bool {
        self.cache_status != "miss"
    }
}

/// Synthesizes one item's whole file through the cache (a stored or in-flight identical request
/// answers without synthesis).
pub async fn synthesize_item(
    state: &AppState,
    params: &SpeechParams,
    ctx: &RequestContext,
) -> Result<ItemAudio, ApiError> {
    let (file, status, key) = state.synthesize_cached(params, ctx).await?;
    let characters = params.text.chars().count();
    let cached = status != crate::cache::CacheStatus::Miss;
    Ok(ItemAudio {
        cache_status: status.as_str().to_string(),
        cache_key: Some(key),
        synthesized_characters: if cached { 0 } else { characters },
        cached_characters: if cached { characters } else { 0 },
        audio_seconds: file.summary.audio_seconds,
    })
}
