//! The app's metrics, named after OpenTelemetry's semantic conventions where one exists.
//! Instruments come from the global meter provider, which is the no-op one unless telemetry
//! is exported: recording then costs a call that does nothing.

use std::sync::LazyLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::db::Database;
use crate::photos::ImageWorkers;

struct Instruments {
    request_duration: Histogram<f64>,
    token_refreshes: Counter<u64>,
    photo_duration: Histogram<f64>,
}

fn meter() -> Meter {
    opentelemetry::global::meter("restaurant-review")
}

/// Created on first use, which is after [`super::install`] (requests come after startup).
static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let meter = meter();
    Instruments {
        request_duration: meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP requests, by route template")
            .build(),
        token_refreshes: meter
            .u64_counter("restaurant_review.token.fetches")
            .with_description("Token fetches from the identity endpoint, by scope and outcome")
            .build(),
        photo_duration: meter
            .f64_histogram("restaurant_review.photo.processing.duration")
            .with_unit("s")
            .with_description("Time to check, orient, strip and resize one uploaded photo")
            .build(),
    }
});

/// One request answered (request rate is the histogram's count).
pub fn request(method: &str, route: &str, status: u16, took: Duration) {
    if super::installed().is_none() {
        return;
    }
    INSTRUMENTS.request_duration.record(
        took.as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
}

/// One token fetch for `scope` (the scope only: never the token).
pub fn token_fetch(scope: &str, succeeded: bool) {
    if super::installed().is_none() {
        return;
    }
    INSTRUMENTS.token_refreshes.add(
        1,
        &[
            KeyValue::new("scope", scope.to_owned()),
            KeyValue::new("outcome", if succeeded { "success" } else { "failure" }),
        ],
    );
}

/// One photo processed (successfully or refused), and how long it took.
pub fn photo_processed(took: Duration, succeeded: bool) {
    if super::installed().is_none() {
        return;
    }
    INSTRUMENTS.photo_duration.record(
        took.as_secs_f64(),
        &[KeyValue::new(
            "outcome",
            if succeeded { "processed" } else { "refused" },
        )],
    );
}

/// Gauges read when metrics are collected: the PostgreSQL pool and the photo memory budget.
pub fn observe(db: &Database, workers: &ImageWorkers) {
    if super::installed().is_none() {
        return;
    }
    let meter = meter();
    let pool = db.clone();
    meter
        .i64_observable_up_down_counter("db.client.connection.count")
        .with_description("PostgreSQL connections in the pool, by state (used, idle)")
        .with_callback(move |observer| {
            if let Some(status) = pool.pool_status() {
                let used = status.size.saturating_sub(status.idle) as i64;
                observer.observe(used, &[KeyValue::new("db.client.connection.state", "used")]);
                observer.observe(
                    status.idle as i64,
                    &[KeyValue::new("db.client.connection.state", "idle")],
                );
            }
        })
        .build();
    let pool = db.clone();
    meter
        .i64_observable_up_down_counter("db.client.connection.pending_requests")
        .with_description("Requests waiting for a PostgreSQL connection")
        .with_callback(move |observer| {
            if let Some(status) = pool.pool_status() {
                observer.observe(status.waiting as i64, &[]);
            }
        })
        .build();
    let workers = workers.clone();
    meter
        .u64_observable_gauge("restaurant_review.photo.memory.in_use")
        .with_unit("By")
        .with_description("Memory reserved by photos being processed, of the photo memory budget")
        .with_callback(move |observer| observer.observe(workers.memory_in_use(), &[]))
        .build();
}
