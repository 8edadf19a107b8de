//! API keys at the HTTP edge: the middleware that turns `Authorization: Bearer <key>` or
//! `X-API-Key: <key>` into a [`Caller`] (401 without a known key, 429 + `Retry-After` past the
//! key's rate), the usage ledger every synthesis is metered into, and `tts-server keys add`.
//!
//! Auth is `auto` by default: on when the server binds a non-loopback address, off on loopback
//! (the local quick start). With auth off every caller is an anonymous admin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tts_accounts::{
    AccountsError, KeyStore, Pricing, RateLimits, RateSpec, UsageReport, UsageStore,
};

pub use tts_accounts::Role;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Usage of callers without a key (auth off) is recorded under this id.
pub const ANONYMOUS: &str = "anonymous";

/// Routes anyone may call: probes, metrics, the API description and the playground page.
const OPEN_PATHS: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/",
    "/playground.js",
    "/playground.css",
    "/favicon.ico",
];

const WEBSOCKET_PATH: &str = "/v1/tts/ws";

/// Routes that synthesize; each successful request is one metered request.
const METERED_PATHS: &[&str] = &[
    "/v1/tts",
    "/v1/tts/stream",
    "/v1/tts/sse",
    "/v1/audio/speech",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// On unless the server binds a loopback address.
    #[default]
    Auto,
    On,
    Off,
}

impl AuthMode {
    pub fn enabled_for(self, bind: SocketAddr) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Auto => !bind.ip().is_loopback(),
        }
    }
}

/// Who is calling, as a request extension. Handlers take it as an extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's id; `None` when auth is off.
    pub key_id: Option<String>,
    pub role: Role,
}

impl Caller {
    /// The caller when auth is off: no key, every right.
    pub fn anonymous_admin() -> Self {
        Self {
            key_id: None,
            role: Role::Admin,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "key {:?} has role user; this needs an admin key",
                self.usage_id()
            )))
        }
    }

    /// The id usage is recorded under.
    pub fn usage_id(&self) -> &str {
        self.key_id.as_deref().unwrap_or(ANONYMOUS)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        // The middleware inserts it on every non-open route; its absence means no key was checked.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("no API key was checked for this route".into()))
    }
}

/// The server's keys and their rate limits.
pub struct Auth {
    enabled: bool,
    keys: KeyStore,
    limits: RateLimits,
}

impl Auth {
    pub fn off() -> Self {
        Self {
            enabled: false,
            keys: KeyStore::default(),
            limits: RateLimits::new(&KeyStore::default(), None),
        }
    }

    /// Resolves `auth = auto` against the bind address and loads the keys file when auth is on.
    /// Auth on with a missing or empty keys file is an error: such a server would refuse everyone.
    pub fn from_config(config: &ServerConfig) -> Result<Self, AccountsError> {
        if !config.auth.enabled_for(config.bind) {
            return Ok(Self::off());
        }
        let keys = KeyStore::load(&config.keys_file)?;
        if keys.is_empty() {
            return Err(AccountsError::InvalidKeys {
                path: config.keys_file.clone(),
                message: "auth is on but the file has no keys (add one with `tts-server keys add`, or pass --auth off)".into(),
            });
        }
        let default_rate = (config.rate_per_minute > 0).then_some(RateSpec {
            per_minute: config.rate_per_minute,
            burst: config.rate_burst,
        });
        let limits = RateLimits::new(&keys, default_rate);
        tracing::info!(
            keys = keys.len(),
            file = %config.keys_file.display(),
            "API keys required"
        );
        Ok(Self {
            enabled: true,
            keys,
            limits,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The caller behind these headers (or, for WebSocket upgrades, the `api_key` query
    /// parameter), rate limit included.
    pub fn authenticate(&self, headers: &HeaderMap, uri: &Uri) -> Result<Caller, ApiError> {
        if !self.enabled {
            return Ok(Caller::anonymous_admin());
        }
        let presented = presented_key(headers)
            .or_else(|| websocket_query_key(uri))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
                        .into(),
                )
            })?;
        let key = self
            .keys
            .verify(presented)
            .ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
        let caller = Caller {
            key_id: Some(key.id.clone()),
            role: key.role,
        };
        self.check_rate(&caller)?;
        Ok(caller)
    }

    /// Takes one request from the caller's token bucket (429 with the wait when it is empty).
    /// WebSocket sessions call it for each utterance after the first, which the upgrade paid.
    pub fn check_rate(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(key_id) = caller.key_id.as_deref().filter(|_| self.enabled) else {
            return Ok(());
        };
        if let Err(wait) = self.limits.check(key_id) {
            metrics::counter!("tts_rate_limited_total", "key" => key_id.to_string()).increment(1);
            // Round up: a client that waits exactly Retry-After seconds must find a token.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::RateLimited {
                retry_after_secs: secs.max(1),
            });
        }
        Ok(())
    }
}

/// Browsers cannot set headers on a WebSocket handshake, so `/v1/tts/ws?api_key=…` is accepted
/// there (and only there: keys in URLs end up in access logs).
fn websocket_query_key(uri: &Uri) -> Option<&str> {
    if uri.path() != WEBSOCKET_PATH {
        return None;
    }
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("api_key="))
        .filter(|k| !k.is_empty())
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Middleware: authenticates every route but the open ones, inserts the [`Caller`], and meters
/// the synthesis routes through a [`UsageTicket`].
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let caller = match state.auth.authenticate(request.headers(), request.uri()) {
        Ok(caller) => caller,
        Err(err) => {
            let unauthorized = matches!(err, ApiError::Unauthorized(_));
            let mut response = err.into_response();
            if unauthorized {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return response;
        }
    };
    let metered = request.method() == Method::POST && METERED_PATHS.contains(&request.uri().path());
    request.extensions_mut().insert(caller.clone());
    if !metered {
        return next.run(request).await;
    }
    let ticket = UsageTicket::new(state.usage.clone(), caller);
    let response = CURRENT_TICKET
        .scope(ticket.clone(), next.run(request))
        .await;
    if response.status().is_success() {
        ticket.mark_served();
    }
    response
}

/// Resolves auth and opens the usage file: the parts of the state that come from files in the
/// configuration.
pub fn with_accounts(mut state: AppState) -> Result<AppState, AccountsError> {
    state.auth = Arc::new(Auth::from_config(&state.config)?);
    state.usage = Arc::new(UsageLedger::open(&state.config)?);
    Ok(state)
}

tokio::task_local! {
    /// The ticket of the request being handled, picked up by `RequestContext::new`.
    static CURRENT_TICKET: UsageTicket;
}

/// Per-key usage: a thin layer over [`UsageStore`] that speaks in [`Caller`]s.
pub struct UsageLedger {
    /// `None` in the placeholder `AppState::new` starts with, before the file is opened.
    store: Option<UsageStore>,
}

impl UsageLedger {
    /// Opens `<storage_dir>/usage.redb`.
    pub fn open(config: &ServerConfig) -> Result<Self, AccountsError> {
        let store = UsageStore::open(&config.storage_dir.join("usage.redb"), pricing(config))?;
        Ok(Self { store: Some(store) })
    }

    /// Records nothing: what `AppState::new` holds until `build_state` opens the file.
    pub fn placeholder() -> Self {
        Self { store: None }
    }

    /// One request of `caller`: `characters` synthesized, `cached_characters` served from cache.
    pub fn record(
        &self,
        caller: &Caller,
        characters: usize,
        cached_characters: usize,
        audio_seconds: f64,
    ) {
        let Some(store) = &self.store else { return };
        store.record(
            caller.usage_id(),
            1,
            characters as u64,
            cached_characters as u64,
            audio_seconds,
        );
    }

    pub fn flush(&self) -> Result<(), AccountsError> {
        match &self.store {
            Some(store) => store.flush(),
            None => Ok(()),
        }
    }

    pub fn query(
        &self,
        key_id: Option<&str>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<UsageReport, AccountsError> {
        match &self.store {
            Some(store) => store.query(key_id, from, to),
            None => Err(AccountsError::InvalidRange(
                "usage is not recorded by this server (no storage)".into(),
            )),
        }
    }
}

fn pricing(config: &ServerConfig) -> Pricing {
    Pricing {
        per_million_characters: config.price_per_million_chars.max(0.0),
    }
}

impl std::fmt::Debug for UsageTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageTicket")
            .field("caller", &self.0.caller)
            .finish_non_exhaustive()
    }
}

/// Collects one request's usage and records it when the last copy is dropped (the handler and,
/// for streams, the task producing the audio), so a stream is metered with its full duration.
#[derive(Clone)]
pub struct UsageTicket(Arc<TicketInner>);

struct TicketInner {
    ledger: Arc<UsageLedger>,
    caller: Caller,
    served: AtomicBool,
    /// (characters synthesized, characters from cache, audio seconds)
    totals: Mutex<(usize, usize, f64)>,
}

impl UsageTicket {
    pub fn new(ledger: Arc<UsageLedger>, caller: Caller) -> Self {
        Self(Arc::new(TicketInner {
            ledger,
            caller,
            served: AtomicBool::new(false),
            totals: Mutex::new((0, 0, 0.0)),
        }))
    }

    /// The ticket of the HTTP request being handled on this task, if it is metered.
    pub fn current() -> Option<Self> {
        CURRENT_TICKET.try_with(Clone::clone).ok()
    }

    /// The model synthesized `characters` into `audio_seconds` of audio.
    pub fn add_synthesized(&self, characters: usize, audio_seconds: f64) {
        let mut totals = self.0.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.0 += characters;
        totals.2 += audio_seconds;
    }

    /// `characters` were answered from the cache (or a shared in-flight synthesis).
    pub fn add_cached(&self, characters: usize, audio_seconds: f64) {
        let mut totals = self.0.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.1 += characters;
        totals.2 += audio_seconds;
    }

    /// The response was a success: the request counts.
    pub fn mark_served(&self) {
        self.0.served.store(true, Ordering::Relaxed);
    }
}

impl Drop for TicketInner {
    fn drop(&mut self) {
        if !self.served.load(Ordering::Relaxed) {
            return;
        }
        let (characters, cached, seconds) = *self.totals.lock().unwrap_or_else(|e| e.into_inner());
        self.ledger
            .record(&self.caller, characters, cached, seconds);
    }
}

/// Writes usage to disk every few seconds until the server stops (the query route and shutdown
/// flush too).
pub fn spawn_usage_flusher(ledger: Arc<UsageLedger>, stop: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            let ledger = ledger.clone();
            match tokio::task::spawn_blocking(move || ledger.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "writing usage"),
                Err(err) => tracing::error!(error = %err, "usage writer task"),
            }
        }
    });
}

/// `tts-server keys …`
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Generate a key, print it once and store only its SHA-256 hash.
    Add {
        /// Id of the key, shown in usage reports (letters, digits, '-', '_', '.').
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: Role,
        #[arg(long, env = "TTS_KEYS_FILE", default_value = "keys.toml")]
        keys_file: PathBuf,
        /// This key's rate limit in requests per minute (default: the server's).
        #[arg(long)]
        rate_per_minute: Option<u32>,
    },
    /// List key ids and roles (never the keys; they are not stored).
    List {
        #[arg(long, env = "TTS_KEYS_FILE", default_value = "keys.toml")]
        keys_file: PathBuf,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Runs `tts-server keys …`; returns what to print on stdout.
pub fn run_keys_command(args: &KeysArgs) -> Result<String, AccountsError> {
    match &args.command {
        KeysCommand::Add {
            name,
            role,
            keys_file,
            rate_per_minute,
        } => {
            let mut file = tts_accounts::KeysFile::read(keys_file, true)?;
            let key = file.add(name, *role)?;
            if let Some(rate) = rate_per_minute {
                if let Some(entry) = file.keys.last_mut() {
                    entry.rate_per_minute = Some((*rate).max(1));
                }
            }
            file.write(keys_file)?;
            Ok(key)
        }
        KeysCommand::List { keys_file } => {
            let file = tts_accounts::KeysFile::read(keys_file, false)?;
            Ok(file
                .keys
                .iter()
                .map(|k| format!("{}\t{}", k.id, k.role))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mode_turns_on_for_non_loopback_addresses() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let local6: SocketAddr = "[::1]:8080".parse().unwrap();
        assert!(AuthMode::Auto.enabled_for(any));
        assert!(!AuthMode::Auto.enabled_for(local));
        assert!(!AuthMode::Auto.enabled_for(local6));
        assert!(!AuthMode::Off.enabled_for(any));
        assert!(AuthMode::On.enabled_for(local));
    }

    #[test]
    fn key_is_read_from_bearer_or_x_api_key() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(presented_key(&headers), Some("abc"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("xyz"));
        assert_eq!(presented_key(&headers), Some("xyz"));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        assert_eq!(presented_key(&headers), None);
    }

    #[test]
    fn query_key_is_read_only_on_the_websocket_route() {
        let ws: Uri = "/v1/tts/ws?voice=x&api_key=k1".parse().unwrap();
        assert_eq!(websocket_query_key(&ws), Some("k1"));
        let tts: Uri = "/v1/tts?api_key=k1".parse().unwrap();
        assert_eq!(websocket_query_key(&tts), None);
    }

    #[test]
    fn user_is_refused_admin_routes_with_403() {
        let user = Caller {
            key_id: Some("u".into()),
            role: Role::User,
        };
        let err = user.require_admin().unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
        assert!(Caller::anonymous_admin().require_admin().is_ok());
    }
}
