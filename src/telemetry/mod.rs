//! Logging and telemetry. `tracing` is the one API in the code: lines on stdout (readable
//! locally, JSON with `LOG_FORMAT=json` for App Service's log stream), and, when configured,
//! the same spans, warnings and errors as OpenTelemetry traces and logs, plus metrics, to
//! Application Insights (with the managed identity's token) or any OTLP collector.
//!
//! With no exporter configured no OpenTelemetry layer is installed: the telemetry-only spans
//! (statements, Blob calls, token fetches, at debug level) are disabled at their call sites,
//! the meters are the no-op ones, and nothing is queued or sent.

mod export;
mod gate;
mod health;
mod http_client;
pub mod metrics;
pub mod outgoing;
mod queue;
pub mod request;
mod sampling;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tokio::sync::watch;
use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use export::ExportSetupError;
pub use health::{ExportHealth, ExportStatus};

use crate::config::{LogFormat, TelemetrySettings};
use crate::identity::TokenSource;

const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn";
/// How long shutdown waits for the last spans to go out.
const FLUSH_PATIENCE: Duration = Duration::from_secs(5);

static INSTALLED: OnceLock<Telemetry> = OnceLock::new();

/// The exporting pipelines, once installed (see [`install`]).
pub struct Telemetry {
    pipelines: export::Pipelines,
    health: Arc<ExportHealth>,
    monitor_tokens: watch::Sender<Option<TokenSource>>,
    wants_monitor_token: bool,
}

/// Logging only, no export. Installs the global subscriber once; later calls (e.g. from
/// tests) are ignored.
pub fn init(format: LogFormat) {
    let _ = tracing_subscriber::registry()
        .with(stdout_layer(format))
        .try_init();
}

/// Logging, and export where `settings` say. Needs the Tokio runtime (export runs on it).
pub fn install(format: LogFormat, settings: &TelemetrySettings) -> Result<(), ExportSetupError> {
    if !settings.exports() {
        init(format);
        return Ok(());
    }
    let health = Arc::new(ExportHealth::default());
    let (monitor_tokens, receiver) = watch::channel(None);
    let pipelines = export::build(settings, &health, receiver)?;
    let tracer = pipelines.tracer.tracer("restaurant-review");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_meter_provider(pipelines.meter.clone());
    let spans = gate::SampledOnly::new(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            // Busy and idle time cost two clock reads on every poll and two attributes on
            // every exported span; the span's own duration is what Application Insights shows.
            .with_tracked_inactivity(false),
    )
    .with_filter(filter_fn(exported_as_trace));
    let logs =
        OpenTelemetryTracingBridge::new(&pipelines.logger).with_filter(filter_fn(exported_as_log));
    let _ = tracing_subscriber::registry()
        .with(stdout_layer(format))
        .with(spans)
        .with(logs)
        .try_init();
    let telemetry = Telemetry {
        wants_monitor_token: settings.app_insights.is_some(),
        pipelines,
        health,
        monitor_tokens,
    };
    if INSTALLED.set(telemetry).is_ok() {
        tracing::info!(
            to = ?installed().map(|t| &t.pipelines.destinations),
            traces = ?settings.sampler,
            "exporting telemetry"
        );
    }
    Ok(())
}

/// The installed pipelines; `None` when nothing is exported.
pub fn installed() -> Option<&'static Telemetry> {
    INSTALLED.get()
}

impl Telemetry {
    /// Whether Azure Monitor needs a token source for its scope.
    /// Application Insights' sampler, which a request consults before its span exists.
    pub(crate) fn sampling(&self) -> Option<&sampling::Sampling> {
        self.pipelines.sampling.as_ref()
    }

    pub fn wants_monitor_token(&self) -> bool {
        self.wants_monitor_token
    }

    /// Hands the application's token source for Azure Monitor to the exporter.
    pub fn use_monitor_tokens(&self, source: TokenSource) {
        self.monitor_tokens.send_replace(Some(source));
    }

    /// What `/health` shows.
    pub fn status(&self) -> ExportStatus {
        self.health.status(self.pipelines.destinations.clone())
    }

    /// Exports what is queued (spans now, logs and metrics through the SDK), within a bound.
    pub async fn flush(&self) {
        for processor in &self.pipelines.processors {
            let _ = tokio::time::timeout(FLUSH_PATIENCE, processor.flush()).await;
        }
        let logger = self.pipelines.logger.clone();
        let meter = self.pipelines.meter.clone();
        // The SDK flushes by blocking its caller: not on a runtime thread.
        let _ = tokio::time::timeout(
            FLUSH_PATIENCE,
            tokio::task::spawn_blocking(move || {
                let _ = logger.force_flush();
                let _ = meter.force_flush();
            }),
        )
        .await;
    }
}

/// The stdout lines, filtered by `RUST_LOG` (default: info, quieter for sqlx and hyper).
fn stdout_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let layer = tracing_subscriber::fmt::layer().with_span_events(FmtSpan::NONE);
    match format {
        LogFormat::Pretty => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    }
}

/// Spans of this app, debug level included (statements, Blob calls, token fetches). Events go
/// as logs (below), correlated with their span; errors logged with `exception.type` and
/// `exception.message` become exceptions.
///
/// Not the data-access methods' own spans (`db.restaurant_page` and the like, kept for the
/// log lines): each holds statement spans that are exported, and would only double every
/// PostgreSQL dependency (each exported span costs the app CPU, see bench/telemetry).
fn exported_as_trace(meta: &Metadata<'_>) -> bool {
    ours(meta)
        && meta.is_span()
        && *meta.level() <= Level::DEBUG
        && !(meta.name().starts_with("db.")
            && *meta.level() == Level::INFO
            && !["db.connect", "db.migrate"].contains(&meta.name()))
}

/// Warnings and errors, from this app and the libraries it uses, but never from the export
/// path itself (a failing export would log about itself forever).
fn exported_as_log(meta: &Metadata<'_>) -> bool {
    meta.is_event()
        && *meta.level() <= Level::WARN
        && ![
            "opentelemetry",
            "hyper",
            "h2",
            "reqwest",
            "restaurant_review::telemetry::export",
        ]
        .iter()
        .any(|prefix| meta.target().starts_with(prefix))
}

fn ours(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("restaurant_review")
}
