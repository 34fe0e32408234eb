//! The app code of the sheets example: a visualization cache. Rendering a chart from a sheet is expensive, so each
//! rendered chart is cached with a TTL of its own (a live dashboard for seconds, a yearly report for hours),
//! and editing a sheet drops all its charts at once. A cache that is down slows charts, never breaks them. It
//! knows only the `Cache` port.

use std::sync::Arc;
use std::time::Duration;

use cpc_data::domain::ValidationError;
use cpc_data::ports::{Cache, CacheExt, CacheKey, KvError};
use serde::{Deserialize, Serialize};

/// A rendered chart: what the front end draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// The title.
    pub title: String,
    /// Points as (label, value).
    pub points: Vec<(String, f64)>,
}

/// Where a chart came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The cache.
    Cache,
    /// Rendered now, and cached.
    Rendered,
    /// Rendered now; the cache could not be used (down, or refused the value), so it was not cached.
    RenderedUncached,
}

/// Why a chart could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SheetsError {
    /// The sheet or chart id, or the TTL, is invalid (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Rendering failed (the renderer's own error).
    #[error("rendering failed: {0}")]
    Render(String),
}

/// The visualization cache.
pub struct ChartCache {
    cache: Arc<dyn Cache>,
}

impl ChartCache {
    /// A chart cache over `cache`.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }

    fn key(sheet: &str, chart: &str) -> Result<CacheKey, ValidationError> {
        if chart.contains(':') {
            return Err(ValidationError::new("chart", "must not contain ':'"));
        }
        CacheKey::new(format!("{}{chart}", Self::prefix(sheet)?))
    }

    fn prefix(sheet: &str) -> Result<String, ValidationError> {
        if sheet.is_empty() || sheet.contains(':') {
            return Err(ValidationError::new("sheet", "must be non-empty without ':'"));
        }
        Ok(format!("sheet:{sheet}:chart:"))
    }

    /// The chart `chart` of `sheet`: from the cache when it is there, else rendered by `render` and cached for
    /// `ttl`. A cache error (down, or a value it cannot decode) falls back to rendering.
    pub async fn chart<F, Fut>(
        &self,
        sheet: &str,
        chart: &str,
        ttl: Duration,
        render: F,
    ) -> Result<(Chart, Source), SheetsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Chart, SheetsError>>,
    {
        if ttl.is_zero() {
            return Err(ValidationError::new("ttl", "must be greater than zero").into());
        }
        let key = Self::key(sheet, chart)?;
        let cache_up = match self.cache.get::<Chart>(&key).await {
            Ok(Some(hit)) => return Ok((hit, Source::Cache)),
            Ok(None) | Err(KvError::Codec(_)) => true,
            Err(_) => false,
        };
        let rendered = render().await?;
        let cached = cache_up && self.cache.set(&key, &rendered, Some(ttl)).await.is_ok();
        Ok((rendered, if cached { Source::Rendered } else { Source::RenderedUncached }))
    }

    /// Drops every cached chart of `sheet` (after an edit); returns how many there were.
    pub async fn invalidate(&self, sheet: &str) -> Result<u64, KvError> {
        self.cache.delete_prefix(&Self::prefix(sheet)?).await
    }
}
