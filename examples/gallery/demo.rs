//! The gallery flow: upload images over HTTP, let a worker with four handlers make the thumbnails, report.

use std::io::Write;
use std::time::Duration;

use cpc_data::adapters::worker::{Worker, WorkerConfig, WorkerReport};
use cpc_data::ports::{CacheExt, JobQueue, QueueName};
use cpc_data::wiring::Ports;

use crate::common::{FlowError, run_tag};
use crate::service::{Accepted, Gallery, IMAGE_MAGIC, THUMBNAIL_SIZE, make_thumbnail, router, thumbnail_key};

/// What the flow saw, for tests.
#[cfg_attr(not(test), allow(dead_code, reason = "read by the tests"))]
#[derive(Debug)]
pub struct Outcome {
    /// The worker's counts.
    pub report: WorkerReport,
    /// Thumbnails found in the cache afterwards.
    pub thumbnails: usize,
    /// The images whose job ended in the dead letters.
    pub dead: Vec<String>,
    /// Whether the repeated upload got the first upload's job id.
    pub deduplicated: bool,
}

/// Serves the upload handler on a free local port, uploads four images (one twice) and a broken one, works the
/// queue with four handlers until it is empty, and prints what happened.
pub async fn run(ports: &Ports, out: &mut impl Write) -> Result<Outcome, FlowError> {
    writeln!(out, "wired: {}", ports.description)?;
    let tag = run_tag();
    let queue = QueueName::new(format!("gallery-thumbnails-{tag}"))?;
    let gallery = Gallery { cache: ports.cache.clone(), jobs: ports.jobs.clone(), queue: queue.clone() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router(gallery)).await });

    let client = reqwest::Client::new();
    let upload = async |name: &str, body: Vec<u8>| -> Result<String, FlowError> {
        let response = client.post(format!("{base}/images/{name}")).body(body).send().await?.error_for_status()?;
        Ok(response.json::<Accepted>().await?.job_id)
    };
    let image = |n: u8| [IMAGE_MAGIC, &[n; 64]].concat();
    let mut first = String::new();
    for n in 1..=4 {
        let id = upload(&format!("photo-{n}-{tag}.img"), image(n)).await?;
        if n == 1 {
            first = id;
        }
    }
    let again = upload(&format!("photo-1-{tag}.img"), image(1)).await?;
    let deduplicated = again == first;
    writeln!(out, "uploaded 4 images; the repeated upload got the same job: {deduplicated}")?;
    upload(&format!("broken-{tag}.img"), b"not an image".to_vec()).await?;
    writeln!(out, "uploaded broken-{tag}.img")?;

    let (cache, codec) = (ports.cache.clone(), ports.jobs.codec());
    let config = WorkerConfig::new(queue.clone())
        .concurrency(4)
        .poll_interval(Duration::from_millis(10))
        .backoff(Duration::from_millis(20), Duration::from_millis(100));
    let worker = Worker::spawn(ports.jobs.clone(), config, move |job| {
        let (cache, codec) = (cache.clone(), codec.clone());
        async move { make_thumbnail(&*cache, codec, job).await }
    });
    wait_until_empty(&*ports.jobs, &queue).await?;
    let report = worker.shutdown(Duration::from_secs(5)).await;
    server.abort();
    writeln!(
        out,
        "worker: {} processed, {} failed, {} retried, {} dead",
        report.processed, report.failed, report.retried, report.dead
    )?;

    let mut thumbnails = 0;
    for n in 1..=4 {
        let thumb: Option<Vec<u8>> = ports.cache.get(&thumbnail_key(&format!("photo-{n}-{tag}.img"))?).await?;
        if thumb.is_some_and(|t| t.len() == THUMBNAIL_SIZE && t.iter().all(|b| *b == n)) {
            thumbnails += 1;
        }
    }
    writeln!(out, "thumbnails made: {thumbnails} of 4")?;
    let codec = ports.jobs.codec();
    let dead: Vec<String> = ports
        .jobs
        .dead_letters(&queue, 10)
        .await?
        .iter()
        .map(|d| codec.decode::<crate::service::Thumbnail>(&d.payload).map(|t| t.image))
        .collect::<Result<_, _>>()?;
    writeln!(out, "dead letters: {}", dead.join(", "))?;
    Ok(Outcome { report, thumbnails, dead, deduplicated })
}

/// Waits (up to 10 s) until the queue has nothing pending, in flight or delayed.
async fn wait_until_empty(jobs: &dyn JobQueue, queue: &QueueName) -> Result<(), FlowError> {
    for _ in 0..1000 {
        let s = jobs.stats(queue).await?;
        if s.pending + s.in_flight + s.delayed == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("the queue did not drain: {:?}", jobs.stats(queue).await?).into())
}
