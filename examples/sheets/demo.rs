//! The sheets demo: two charts of one sheet with different TTLs; the short one expires and is rendered again
//! while the long one is still served from the cache; an edit of the sheet drops both.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cpc_data::wiring::Ports;

use crate::common::{FlowError, run_tag};
use crate::service::{Chart, ChartCache, SheetsError, Source};

/// The live chart's TTL: short, so the demo sees it expire.
const LIVE_TTL: Duration = Duration::from_secs(1);
/// The report chart's TTL.
const REPORT_TTL: Duration = Duration::from_secs(3600);

/// Runs the demo, writing what happens to `out`; returns how many times a chart was rendered.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<usize, FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    let charts = ChartCache::new(ports.cache.clone());
    let sheet = format!("budget-{}", run_tag());
    let renders = AtomicUsize::new(0);
    let render = |title: &'static str| {
        let renders = &renders;
        async move {
            renders.fetch_add(1, Ordering::SeqCst);
            let points = [("Jan", 120.0), ("Feb", 98.5), ("Mar", 143.25)];
            Ok::<_, SheetsError>(Chart { title: title.into(), points: points.map(|(l, v)| (l.into(), v)).into() })
        }
    };
    let show = async |chart: &str, ttl: Duration, out: &mut dyn Write| -> Result<Source, FlowError> {
        let (c, source) =
            charts.chart(&sheet, chart, ttl, || render(if ttl == LIVE_TTL { "Live" } else { "Report" })).await?;
        writeln!(out, "{chart} (ttl {ttl:?}): {source:?}, {} points", c.points.len())?;
        Ok(source)
    };
    show("live", LIVE_TTL, out).await?;
    show("live", LIVE_TTL, out).await?;
    show("report", REPORT_TTL, out).await?;
    tokio::time::sleep(LIVE_TTL + Duration::from_millis(300)).await;
    writeln!(out, "after {:?}:", LIVE_TTL + Duration::from_millis(300))?;
    show("live", LIVE_TTL, out).await?;
    show("report", REPORT_TTL, out).await?;
    let dropped = charts.invalidate(&sheet).await?;
    writeln!(out, "sheet edited: {dropped} cached charts dropped")?;
    show("report", REPORT_TTL, out).await?;
    let broken = async || Err(SheetsError::Render("the sheet has no numeric column".into()));
    match charts.chart(&sheet, "broken", REPORT_TTL, broken).await {
        Err(e) => writeln!(out, "broken: {e}")?,
        Ok(_) => return Err("a failing render produced a chart".into()),
    }
    let renders = renders.load(Ordering::SeqCst);
    writeln!(out, "renders: {renders}")?;
    Ok(renders)
}
