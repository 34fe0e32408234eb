//! The app code of the sheets example: a visualization cache. Rendering a chart from a sheet is expensive, so each
//! rendered chart is cached with a TTL of its own (a live dashboard for seconds, a yearly report for hours),
//! and editing a sheet drops all its charts at once. A cache that is down slows charts, never breaks them. It
//! knows only the `Cache` port.

use std::sync::{Arc, Mutex};
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

/// The `backend` of the [`KvError::Backend`] that carries a render's failure through `get_or_set`.
const RENDERER: &str = "renderer";

/// What a failed render says, without the "rendering failed" its [`SheetsError`] adds.
fn render_message(error: SheetsError) -> String {
    match error {
        SheetsError::Render(message) => message,
        other => other.to_string(),
    }
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
    /// `ttl`, through the port's single-flight `get_or_set`: of many requests for one missing chart in this
    /// process, one renders and the others get its chart (or its error). A cache error (down, a value it cannot
    /// decode, a store that failed, a wait for another request's render that ran out) falls back to rendering
    /// here, at most once per call.
    pub async fn chart<F, Fut>(
        &self,
        sheet: &str,
        chart: &str,
        ttl: Duration,
        render: F,
    ) -> Result<(Chart, Source), SheetsError>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Chart, SheetsError>> + Send,
    {
        if ttl.is_zero() {
            return Err(ValidationError::new("ttl", "must be greater than zero").into());
        }
        let key = Self::key(sheet, chart)?;
        // `render` runs at most once: inside get_or_set, or after it if the cache failed before rendering.
        let render = Mutex::new(Some(render));
        let rendered = Mutex::new(None);
        let render_once = async || -> Result<Chart, KvError> {
            let render = render.lock().unwrap_or_else(|e| e.into_inner()).take();
            let chart = match render {
                Some(render) => render().await.map_err(|e| KvError::backend(RENDERER, render_message(e)))?,
                None => return Err(KvError::backend(RENDERER, "the chart was already rendered")),
            };
            *rendered.lock().unwrap_or_else(|e| e.into_inner()) = Some(chart.clone());
            Ok(chart)
        };
        let outcome = self.cache.get_or_set(&key, Some(ttl), render_once).await;
        let fresh = rendered.lock().unwrap_or_else(|e| e.into_inner()).take();
        match outcome {
            Ok(chart) => Ok((chart, if fresh.is_some() { Source::Rendered } else { Source::Cache })),
            Err(KvError::Backend { backend: RENDERER, source }) => Err(SheetsError::Render(source.to_string())),
            Err(error) => {
                let chart = match fresh {
                    Some(chart) => chart,
                    None => match render.into_inner().unwrap_or_else(|e| e.into_inner()) {
                        Some(render) => render().await?,
                        None => return Err(SheetsError::Render("the chart was already rendered".into())),
                    },
                };
                // A value the cache cannot decode is replaced; an unreachable cache is not written to.
                let cached =
                    matches!(error, KvError::Codec(_)) && self.cache.set(&key, &chart, Some(ttl)).await.is_ok();
                Ok((chart, if cached { Source::Rendered } else { Source::RenderedUncached }))
            }
        }
    }

    /// Drops every cached chart of `sheet` (after an edit); returns how many there were.
    pub async fn invalidate(&self, sheet: &str) -> Result<u64, KvError> {
        self.cache.delete_prefix(&Self::prefix(sheet)?).await
    }
}
