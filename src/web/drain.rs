//! Reading the unread rest of a refused upload before answering.
//!
//! A handler that refuses an upload part-way (a photo over the limit) leaves the rest of the
//! body unread. hyper then answers and closes the connection with that rest still arriving,
//! so the kernel resets it: a client that sends the whole body before reading the answer
//! (Python's urllib, curl without `Expect`, many HTTP libraries, browsers on slow links) gets
//! "broken pipe" or "connection reset" instead of the 413 page. Here the rest is read and
//! thrown away, up to a bound in bytes and in time, before the answer goes out.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::{Stream, StreamExt};

/// How much unread body a route is willing to read and discard, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct DrainBudget {
    pub max_bytes: u64,
    pub max_time: Duration,
}

/// The request body, shared between the handler (through the request) and this middleware,
/// which reads what the handler left. The lock is only held inside one poll, never across an
/// await, and the two never poll at the same time (the handler is done when we drain).
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Shared>>);

struct Shared {
    stream: BodyDataStream,
    /// The body ended or failed (a timeout, a reset): nothing more to read.
    finished: bool,
}

impl Stream for SharedBody {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut shared = match self.0.lock() {
            Ok(shared) => shared,
            Err(poisoned) => poisoned.into_inner(),
        };
        if shared.finished {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut shared.stream).poll_next(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            shared.finished = true;
        }
        polled
    }
}

/// Runs the handler, then reads and discards what it left of the body, within `budget`: a
/// declared length beyond the budget is not waited for (the answer goes out at once and the
/// connection is closed), nor is a body that keeps coming past it.
pub async fn drain_unread_body(
    State(budget): State<DrainBudget>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > budget.max_bytes) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let shared = SharedBody(Arc::new(Mutex::new(Shared {
        stream: body.into_data_stream(),
        finished: false,
    })));
    let mut rest = shared.clone();
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(shared)))
        .await;
    let drained = tokio::time::timeout(budget.max_time, async {
        let mut bytes = 0u64;
        while let Some(Ok(chunk)) = rest.next().await {
            bytes += chunk.len() as u64;
            if bytes > budget.max_bytes {
                return Err(bytes);
            }
        }
        Ok(bytes)
    })
    .await;
    match drained {
        Ok(Ok(0)) => {}
        Ok(Ok(bytes)) => tracing::debug!(bytes, "read the rest of a refused upload"),
        Ok(Err(bytes)) => tracing::info!(bytes, "stopped reading an upload past its bound"),
        Err(_) => tracing::info!("stopped reading a slow upload after its time bound"),
    }
    response
}
