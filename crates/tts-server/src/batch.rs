//! Batch jobs (`POST /v1/batch`): many texts synthesized in the background into the cache, with
//! bounded concurrency shared by every job. A job keeps per-item results (cache key, download URL,
//! or the error) in memory; an item that fails is reported and the others go on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::config::ServerConfig;
use crate::error::{ApiError, ErrorDetail};
use crate::speech::{RequestContext, SpeechParams};
use crate::state::{AppState, SpeechInput};

/// Finished jobs are forgotten after this long.
const KEEP_FINISHED: Duration = Duration::from_secs(3600);

/// One text of a batch (the `/v1/tts` fields that make sense for a file in the cache).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    pub text: String,
    /// Voice id; default: the server's default voice.
    pub voice: Option<String>,
    pub model: Option<String>,
    /// `wav`, `mp3` (default), `opus`, `flac`, `pcm`, `mulaw`.
    pub format: Option<String>,
    /// 0.25 to 4 (default 1).
    pub speed: Option<f32>,
    pub sample_rate: Option<u32>,
}

impl BatchItem {
    pub fn input(&self, max_chars: usize) -> SpeechInput<'_> {
        SpeechInput {
            text: &self.text,
            text_field: "text",
            max_chars,
            voice: self.voice.as_deref(),
            model: self.model.as_deref(),
            format: self.format.as_deref(),
            format_field: "format",
            default_format: None,
            sample_rate: self.sample_rate,
            speed: self.speed,
            bitrate: None,
            normalize_loudness: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Queued,
    Running,
    Done,
    Failed,
}

/// An item's state and, once done, where its audio is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    pub status: ItemStatus,
    pub characters: usize,
    /// `miss` (synthesized now), `hit-memory`, `hit-disk`, … when the cache answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// `GET` this for the audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

struct Job {
    owner: Caller,
    items: Mutex<Vec<ItemResult>>,
    finished_at: Mutex<Option<Instant>>,
}

impl Job {
    fn view(&self, id: &str) -> JobView {
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
            id: id.to_string(),
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
}

/// The jobs of this server and the permits their items share.
pub struct BatchJobs {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    permits: Arc<Semaphore>,
    max_items: usize,
}

impl Default for BatchJobs {
    fn default() -> Self {
        Self::new(&ServerConfig::default())
    }
}

impl BatchJobs {
    pub fn new(config: &ServerConfig) -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(config.batch_concurrency.max(1))),
            max_items: config.batch_max_items.max(1),
        }
    }

    pub fn max_items(&self) -> usize {
        self.max_items
    }

    /// Validates every item, registers the job and starts its items; returns the job id.
    /// Items that fail validation are reported as failed; the request fails only when it is
    /// empty or too large.
    pub fn submit(
        &self,
        state: &AppState,
        caller: Caller,
        items: Vec<BatchItem>,
    ) -> Result<JobView, ApiError> {
        if items.is_empty() {
            return Err(ApiError::invalid("empty_batch", "items", "items is empty"));
        }
        if items.len() > self.max_items {
            return Err(ApiError::invalid(
                "batch_too_large",
                "items",
                format!(
                    "items has {} entries; the limit is {}",
                    items.len(),
                    self.max_items
                ),
            ));
        }
        let mut results = Vec::with_capacity(items.len());
        let mut work = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let characters = item.text.chars().count();
            let mut result = ItemResult {
                index,
                status: ItemStatus::Queued,
                characters,
                cache: None,
                cache_key: None,
                url: None,
                audio_seconds: None,
                error: None,
            };
            match state.validate(item.input(state.config.max_text_chars)) {
                Ok(params) => work.push((index, params)),
                Err(err) => {
                    result.status = ItemStatus::Failed;
                    result.error = Some(item_error(&err, index));
                }
            }
            results.push(result);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let job = Arc::new(Job {
            owner: caller,
            items: Mutex::new(results),
            finished_at: Mutex::new(None),
        });
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.retain(|_, job| {
                let finished = *job.finished_at.lock().unwrap_or_else(|e| e.into_inner());
                finished.is_none_or(|at| at.elapsed() < KEEP_FINISHED)
            });
            jobs.insert(id.clone(), job.clone());
        }
        tracing::info!(job = %id, items = items.len(), valid = work.len(), "batch job queued");
        let view = job.view(&id);
        tokio::spawn(run_job(state.clone(), self.permits.clone(), job, id, work));
        Ok(view)
    }

    /// The job, when `caller` may see it (its owner, or an admin); otherwise 404, so ids of other
    /// keys' jobs cannot be probed.
    pub fn view(&self, id: &str, caller: &Caller) -> Result<JobView, ApiError> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = jobs.get(id).ok_or(ApiError::NotFound)?;
        if !caller.is_admin() && job.owner.key_id != caller.key_id {
            return Err(ApiError::NotFound);
        }
        Ok(job.view(id))
    }
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
    id: String,
    work: Vec<(usize, SpeechParams)>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, params) in work {
        let (state, permits, job, id) = (state.clone(), permits.clone(), job.clone(), id.clone());
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
                Err(err) => {
                    tracing::info!(job = %id, index, error = %err, "batch item failed");
                    job.update(index, |item| {
                        item.status = ItemStatus::Failed;
                        item.error = Some(item_error(&err, index));
                    });
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    *job.finished_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    let view = job.view(&id);
    tracing::info!(job = %id, done = view.done, failed = view.failed, "batch job finished");
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
