//! The client: one pooled `reqwest::Client`, a base URL, an optional API key and a retry policy,
//! shared by every call (cloning a `Client` is cheap and shares the connection pool).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use url::Url;

use crate::error::{server_error, ClientError};
use crate::request::{AudioInfo, SpeechRequest, Synthesis};
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::sse::SseStream;
use crate::stream::AudioStream;
use crate::voices::{Voice, VoiceList, VoiceUpload};

/// Settings of a [`Client`]; see [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    api_key: Option<String>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    retry: RetryPolicy,
    user_agent: String,
}

impl ClientBuilder {
    /// Bearer token sent as `Authorization: Bearer <key>` on every request.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.api_key = (!key.is_empty()).then_some(key);
        self
    }

    /// Time allowed to open a TCP (and TLS) connection. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole request, body included; `None` for no limit. Default 300 s.
    /// Streams are bounded by it too, so long streams may want `None` plus a read timeout.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest silence between two reads of a response. Default 120 s.
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: self.base_url.clone(),
            reason,
        };
        let mut base = Url::parse(&self.base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        // Joining relative paths keeps a path prefix (`https://host/tts/`) only with a trailing slash.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(90));
        if let Some(timeout) = self.timeout {
            http = http.timeout(timeout);
        }
        if let Some(timeout) = self.read_timeout {
            http = http.read_timeout(timeout);
        }
        let http = http.build().map_err(ClientError::Http)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                api_key: self.api_key,
                retry: self.retry,
                connect_timeout: self.connect_timeout,
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
    retry: RetryPolicy,
    connect_timeout: Duration,
}

/// Async client of `tts-server`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("api_key", &self.inner.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Client {
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Some(Duration::from_secs(300)),
            read_timeout: Some(Duration::from_secs(120)),
            retry: RetryPolicy::default(),
            user_agent: format!("tts-client/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// A client with default settings.
    pub fn new(base_url: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(base_url).build()
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    pub(crate) fn api_key(&self) -> Option<&str> {
        self.inner.api_key.as_deref()
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.inner.connect_timeout
    }

    /// `path` (no leading slash needed) against the base URL.
    pub(crate) fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.inner
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::InvalidUrl {
                url: path.to_string(),
                reason: e.to_string(),
            })
    }

    fn request(&self, method: Method, url: &Url) -> RequestBuilder {
        let builder = self.inner.http.request(method, url.clone());
        match &self.inner.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Sends the request built by `build` until it succeeds, fails for good, or retries run out.
    /// `build` is called once per attempt, so bodies are rebuilt rather than reused.
    pub(crate) async fn send(
        &self,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        method: Method,
    ) -> Result<Response, ClientError> {
        let policy = &self.inner.retry;
        let mut retry = 0;
        loop {
            let err = match build(self.request(method.clone(), url)).send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = parse_retry_after(response.headers());
                    let body = response.bytes().await.unwrap_or_default();
                    server_error(status, retry_after, &body)
                }
                Err(err) => ClientError::from_reqwest(url.as_str(), err),
            };
            let retry_after = err.server().and_then(|e| e.retry_after);
            let wait = (err.is_retryable() && retry < policy.max_retries)
                .then(|| policy.delay(retry, retry_after))
                .flatten();
            let Some(wait) = wait else {
                return Err(err);
            };
            tracing::debug!(%url, retry, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let response = self.send(&url, |b| b, Method::GET).await?;
        read_json(&url, response).await
    }

    /// Synthesizes `request` and returns the whole file (`POST /v1/tts`).
    pub async fn synthesize(&self, request: &SpeechRequest) -> Result<Synthesis, ClientError> {
        let url = self.url("v1/tts")?;
        let response = self.send(&url, |b| b.json(request), Method::POST).await?;
        let info = AudioInfo::from_headers(response.headers());
        let audio = response
            .bytes()
            .await
            .map_err(|e| ClientError::from_reqwest(url.as_str(), e))?;
        Ok(Synthesis { audio, info })
    }

    /// Streams the audio of `request` as it is synthesized (`POST /v1/tts/stream`). Retries
    /// happen only until the server accepts; the chunks' concatenation is one valid file.
    pub async fn stream(&self, request: &SpeechRequest) -> Result<AudioStream, ClientError> {
        let started = Instant::now();
        let url = self.url("v1/tts/stream")?;
        let response = self.send(&url, |b| b.json(request), Method::POST).await?;
        Ok(AudioStream::new(response, started))
    }

    /// Server-Sent Events of `request` (`POST /v1/tts/sse`): base64 audio deltas, then a summary.
    pub async fn sse(&self, request: &SpeechRequest) -> Result<SseStream, ClientError> {
        let started = Instant::now();
        let url = self.url("v1/tts/sse")?;
        let response = self
            .send(
                &url,
                |b| b.json(request).header("accept", "text/event-stream"),
                Method::POST,
            )
            .await?;
        Ok(SseStream::new(response, started))
    }

    /// Every voice the server speaks (`GET /v1/voices`).
    pub async fn voices(&self) -> Result<VoiceList, ClientError> {
        self.get_json("v1/voices").await
    }

    /// Uploads a voice sample for cloning (`POST /v1/voices`, multipart).
    pub async fn upload_voice(&self, upload: &VoiceUpload) -> Result<Voice, ClientError> {
        let url = self.url("v1/voices")?;
        let response = self
            .send(&url, |b| b.multipart(upload.form()), Method::POST)
            .await?;
        let value: serde_json::Value = read_json(&url, response).await?;
        // Accept the bare voice object or `{"voice": {...}}`.
        let voice = match value.get("voice") {
            Some(inner) if inner.is_object() => inner.clone(),
            _ => value,
        };
        serde_json::from_value(voice)
            .map_err(|e| ClientError::Protocol(format!("voice upload answer: {e}")))
    }

    /// Deletes an uploaded voice (`DELETE /v1/voices/{id}`).
    pub async fn delete_voice(&self, id: &str) -> Result<(), ClientError> {
        let mut url = self.url("v1/voices/")?;
        url.path_segments_mut()
            .map_err(|_| ClientError::InvalidRequest("base URL cannot take a path".into()))?
            .pop_if_empty()
            .push(id);
        self.send(&url, |b| b, Method::DELETE).await?;
        Ok(())
    }

    /// The caller's usage (`GET /v1/usage`), as the server reports it.
    pub async fn usage(&self) -> Result<serde_json::Value, ClientError> {
        self.get_json("v1/usage").await
    }

    /// Cache statistics (`GET /v1/cache/stats`).
    pub async fn cache_stats(&self) -> Result<serde_json::Value, ClientError> {
        self.get_json("v1/cache/stats").await
    }

    /// Whether the server is ready to synthesize (`GET /ready` answers 2xx).
    pub async fn ready(&self) -> Result<bool, ClientError> {
        let url = self.url("ready")?;
        let response = self
            .request(Method::GET, &url)
            .send()
            .await
            .map_err(|e| ClientError::from_reqwest(url.as_str(), e))?;
        Ok(response.status().is_success())
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    url: &Url,
    response: Response,
) -> Result<T, ClientError> {
    let body = response
        .bytes()
        .await
        .map_err(|e| ClientError::from_reqwest(url.as_str(), e))?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(format!("{url}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_with_a_path_prefix_keeps_it() {
        let client = Client::new("https://example.test/tts").unwrap();
        assert_eq!(
            client.url("/v1/tts").unwrap().as_str(),
            "https://example.test/tts/v1/tts"
        );
    }

    #[test]
    fn non_http_base_url_is_rejected() {
        let err = Client::new("ftp://example.test").unwrap_err();
        assert!(matches!(err, ClientError::InvalidUrl { .. }), "{err}");
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let client = Client::builder("http://127.0.0.1:1")
            .api_key("secret-key")
            .build()
            .unwrap();
        assert!(!format!("{client:?}").contains("secret-key"));
    }
}
