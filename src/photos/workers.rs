//! Runs photo processing within one memory budget shared by all photos in flight (see
//! [`super::processing`] for what one photo needs).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::processing::{
    DecodeCost, PhotoError, PhotoLimits, ProcessedPhoto, inspect, inspect_as, process_as,
};

/// How long an upload waits for memory before it is turned away (503, the form kept): long
/// enough for a queue of the largest photos to drain, well within the request timeout.
const MEMORY_WAIT: Duration = Duration::from_secs(45);
/// The memory budget is counted in KiB, so a budget up to 4 TiB fits the semaphore's u32.
const KIB: u64 = 1024;

/// Runs photo processing on blocking threads, a few at a time, so uploads neither stall the
/// async workers nor use unbounded CPU; and only while the memory all photos in flight need
/// stays within one budget, so memory stays bounded whatever is uploaded.
#[derive(Debug, Clone)]
pub struct ImageWorkers {
    permits: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    /// The whole budget, in KiB (what the metric of memory in use is measured against).
    budget_kib: u64,
    memory_wait: Duration,
}

impl ImageWorkers {
    pub fn new(concurrency: usize, memory_budget: u64) -> Self {
        let kib = u32::try_from(memory_budget.div_ceil(KIB)).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memory: Arc::new(Semaphore::new(kib as usize)),
            budget_kib: u64::from(kib),
            memory_wait: MEMORY_WAIT,
        }
    }

    /// The same workers with a shorter wait for memory, for tests.
    pub fn with_memory_wait(self, memory_wait: Duration) -> Self {
        Self {
            memory_wait,
            ..self
        }
    }

    /// Bytes of the memory budget reserved by photos in flight now.
    pub fn memory_in_use(&self) -> u64 {
        let free = self.memory.available_permits() as u64;
        self.budget_kib.saturating_sub(free) * KIB
    }

    #[tracing::instrument(name = "photo.process", skip_all, fields(bytes = bytes.len(), otel.kind = "internal"))]
    pub async fn process(
        &self,
        bytes: Bytes,
        limits: PhotoLimits,
    ) -> Result<ProcessedPhoto, PhotoError> {
        let started = std::time::Instant::now();
        let result = self.process_within_budget(bytes, limits).await;
        crate::telemetry::metrics::photo_processed(started.elapsed(), result.is_ok());
        result
    }

    async fn process_within_budget(
        &self,
        bytes: Bytes,
        limits: PhotoLimits,
    ) -> Result<ProcessedPhoto, PhotoError> {
        let (bytes, limits, cost) = self
            .blocking(move || {
                let cost = inspect(&bytes, &limits);
                (bytes, limits, cost)
            })
            .await?;
        let cost = cost?;
        if let Some(photo) = self.process_as(bytes.clone(), limits.clone(), cost).await? {
            return Ok(photo);
        }
        // The reduced decode failed: the full one waits for its own, larger share of memory.
        let (bytes, limits, cost) = self
            .blocking(move || {
                let cost = inspect_as(&bytes, &limits, false);
                (bytes, limits, cost)
            })
            .await?;
        self.process_as(bytes, limits, cost?)
            .await?
            .ok_or(PhotoError::Internal)
    }

    /// Waits for the memory `cost` needs and a worker, then processes the photo as planned.
    async fn process_as(
        &self,
        bytes: Bytes,
        limits: PhotoLimits,
        cost: DecodeCost,
    ) -> Result<Option<ProcessedPhoto>, PhotoError> {
        let kib = u32::try_from(cost.memory.div_ceil(KIB)).map_err(|_| PhotoError::Internal)?;
        // Fair (first come, first served), so a large photo is not starved by small ones.
        let memory = match tokio::time::timeout(
            self.memory_wait,
            self.memory.clone().acquire_many_owned(kib),
        )
        .await
        {
            Ok(Ok(memory)) => memory,
            Ok(Err(_closed)) => return Err(PhotoError::Internal),
            Err(_elapsed) => {
                tracing::warn!(
                    needed_mib = cost.memory / (KIB * KIB),
                    "no memory for a photo within {:?}: turned away",
                    self.memory_wait
                );
                return Err(PhotoError::Busy);
            }
        };
        let worker = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PhotoError::Internal)?;
        tracing::debug!(
            width = cost.width,
            height = cost.height,
            decoded_width = cost.decoded.0,
            decoded_height = cost.decoded.1,
            memory_mib = cost.memory / (KIB * KIB),
            "decoding a photo"
        );
        self.blocking(move || {
            let held = (memory, worker);
            let processed = process_as(&bytes, &limits, &cost);
            drop(bytes);
            return_freed_memory_to_the_system();
            drop(held);
            processed
        })
        .await?
    }

    /// Takes the whole memory budget until the permit is dropped, as if huge photos were in
    /// flight.
    #[cfg(test)]
    pub(crate) fn hold_all_memory(&self) -> tokio::sync::OwnedSemaphorePermit {
        let all = u32::try_from(self.memory.available_permits()).unwrap();
        self.memory.clone().try_acquire_many_owned(all).unwrap()
    }

    /// Runs `work` on a blocking thread inside the current span.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PhotoError> {
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .await
            .map_err(|join_error| {
                tracing::error!(error = %join_error, "photo processing panicked");
                PhotoError::Internal
            })
    }
}

/// glibc keeps what a thread frees in that thread's malloc arena for reuse, and a photo runs on
/// whichever blocking thread is free: each photo left its resize and encode buffers (megabytes,
/// under the mmap threshold) behind in some arena, which the memory budget does not see, and
/// eight concurrent uploads ended 30–70 MiB over it. Trimming after each photo, before its
/// share of the budget is released, hands that memory back (a millisecond beside a photo's
/// 100+). Called through libc because no crate wraps glibc's `malloc_trim`.
fn return_freed_memory_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only returns free memory to the system; it is
    // thread-safe (it locks each arena in turn).
    unsafe {
        libc::malloc_trim(0);
    }
}
