//! `GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD[&key=ID]`: requests, characters, audio seconds
//! and estimated cost per key and UTC day. A user key sees its own usage; an admin sees every key,
//! or one with `key=`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{Days, NaiveDate, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Days covered when `from` is not given (ending at `to`).
const DEFAULT_DAYS: u64 = 30;

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// First day, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    pub from: Option<String>,
    /// Last day, inclusive; default: today (UTC).
    pub to: Option<String>,
    /// Admins only: one key's usage.
    pub key: Option<String>,
}

/// The report: rows per key and day, and their total (see `tts_accounts::UsageReport`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UsageReportSchema {
    pub from: String,
    pub to: String,
    pub price_per_million_characters: f64,
    /// `{key_id, date, requests, characters_synthesized, characters_cached, audio_seconds, cost, cost_saved}`
    pub rows: Vec<serde_json::Value>,
    pub total: serde_json::Value,
}

/// Usage per key and day.
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Usage rows and total", body = UsageReportSchema),
        (status = 400, description = "Bad date; the field is named", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "A user key asked for another key", body = ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<tts_accounts::UsageReport>, ApiError> {
    let Query(query) = query.map_err(|err| ApiError::Invalid {
        code: "invalid_query",
        field: None,
        message: err.body_text(),
    })?;
    let to = match &query.to {
        Some(text) => parse_date(text, "to")?,
        None => Utc::now().date_naive(),
    };
    let from = match &query.from {
        Some(text) => parse_date(text, "from")?,
        None => to
            .checked_sub_days(Days::new(DEFAULT_DAYS - 1))
            .unwrap_or(to),
    };
    if from > to {
        return Err(ApiError::invalid(
            "invalid_range",
            "from",
            format!("from {from} is after to {to}"),
        ));
    }
    let key = if caller.is_admin() {
        query.key.clone()
    } else {
        match &query.key {
            Some(asked) if Some(asked) != caller.key_id.as_ref() => {
                return Err(ApiError::Forbidden(
                    "a user key may only read its own usage".into(),
                ))
            }
            _ => Some(caller.usage_id().to_string()),
        }
    };
    let ledger = state.usage.clone();
    // The query writes pending totals first (an fsync): keep it off the async threads.
    let report = tokio::task::spawn_blocking(move || ledger.query(key.as_deref(), from, to))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok(Json(report))
}

fn parse_date(text: &str, field: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(
            "invalid_date",
            field,
            format!("{field} {text:?} is not a date YYYY-MM-DD"),
        )
    })
}
