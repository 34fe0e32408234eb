//! The gallery's app code, on ports only: the upload handler (axum) that stores the image and enqueues a
//! thumbnail job, and the job handler the worker runs.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use cpc_data::ports::{Cache, CacheExt, CacheKey, EnqueueOptions, JobQueue, JobQueueExt, QueueName, ReservedJob};
use serde::{Deserialize, Serialize};

/// The thumbnail edge, in bytes of our toy image format.
pub const THUMBNAIL_SIZE: usize = 16;
/// How long uploaded images and thumbnails stay in the cache (the toy gallery's storage).
const KEEP: Duration = Duration::from_secs(3600);
/// Every image of the toy format starts with these bytes; anything else is a broken upload.
pub const IMAGE_MAGIC: &[u8] = b"IMG\x01";

/// The job: which image to make a thumbnail of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// The image name.
    pub image: String,
    /// The thumbnail size.
    pub size: usize,
}

/// What the upload handler needs.
#[derive(Clone)]
pub struct Gallery {
    /// Where images and thumbnails are kept.
    pub cache: Arc<dyn Cache>,
    /// Where thumbnail jobs go.
    pub jobs: Arc<dyn JobQueue>,
    /// The thumbnail queue.
    pub queue: QueueName,
}

/// The reply to an upload: the job that will make the thumbnail.
#[derive(Debug, Serialize, Deserialize)]
pub struct Accepted {
    /// The thumbnail job's id (the same for a repeated upload of one image).
    pub job_id: String,
}

/// `POST /images/{name}` with the image as the body: 202 and the job id.
pub fn router(gallery: Gallery) -> Router {
    Router::new().route("/images/{name}", post(upload)).with_state(gallery)
}

fn image_key(name: &str) -> Result<CacheKey, String> {
    CacheKey::new(format!("gallery:image:{name}")).map_err(|e| e.to_string())
}

/// The cache key of an image's thumbnail.
pub fn thumbnail_key(name: &str) -> Result<CacheKey, String> {
    CacheKey::new(format!("gallery:thumb:{name}")).map_err(|e| e.to_string())
}

async fn upload(
    State(gallery): State<Gallery>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, axum::Json<Accepted>), (StatusCode, String)> {
    let internal = |e: cpc_data::ports::KvError| (StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let key = image_key(&name).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    gallery.cache.set_bytes(&key, body, Some(KEEP)).await.map_err(internal)?;
    // One thumbnail job per image, however often it is uploaded (double clicks, client retries).
    let options = EnqueueOptions::default().idempotency_key(format!("thumbnail:{name}")).max_attempts(3);
    let job = Thumbnail { image: name, size: THUMBNAIL_SIZE };
    let id = gallery.jobs.enqueue(&gallery.queue, &job, options).await.map_err(internal)?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted { job_id: id.to_string() })))
}

/// Why a thumbnail could not be made.
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// The worker's handler: loads the image, shrinks it (keeps every n-th pixel byte) and stores the thumbnail.
/// Idempotent, as an at-least-once handler must be: a second run writes the same thumbnail.
pub async fn make_thumbnail(
    cache: &dyn Cache,
    codec: cpc_data::ports::Codec,
    job: ReservedJob,
) -> Result<(), JobError> {
    let Thumbnail { image, size } = codec.decode(&job.payload)?;
    let bytes = cache.get_bytes(&image_key(&image)?).await?.ok_or_else(|| format!("image {image} is gone"))?;
    let pixels = bytes.strip_prefix(IMAGE_MAGIC).ok_or_else(|| format!("{image} is not an image"))?;
    let step = pixels.len().div_ceil(size.max(1)).max(1);
    let thumbnail: Vec<u8> = pixels.iter().step_by(step).copied().collect();
    cache.set(&thumbnail_key(&image)?, &thumbnail, Some(KEEP)).await?;
    Ok(())
}
