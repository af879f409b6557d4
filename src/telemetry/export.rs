//! The OpenTelemetry pipelines: one tracer, logger and meter provider, each feeding
//! Application Insights, an OTLP collector, or both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{
    Sampler as SdkSampler, SdkTracerProvider, ShouldSample, SpanData, SpanExporter,
};
use tokio::sync::watch;

use super::health::ExportHealth;
use super::http_client::ExportClient;
use super::queue::{BoundedSpanProcessor, describe};
use super::sampling::{self, Sampling};
use crate::config::{ParentRoot, Sampler, TelemetrySettings};
use crate::identity::TokenSource;

pub type AppInsights = opentelemetry_application_insights::Exporter<ExportClient>;

#[derive(Debug, thiserror::Error)]
pub enum ExportSetupError {
    #[error("the telemetry HTTP client could not be built")]
    Client(#[from] reqwest::Error),
    #[error("APPLICATIONINSIGHTS_CONNECTION_STRING is not usable: {0}")]
    ConnectionString(String),
    #[error("the OTLP exporter could not be built")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
}

pub struct Pipelines {
    pub tracer: SdkTracerProvider,
    pub logger: SdkLoggerProvider,
    pub meter: SdkMeterProvider,
    pub processors: Vec<Arc<BoundedSpanProcessor>>,
    pub destinations: Vec<&'static str>,
    /// Application Insights' samplers, which requests consult before their span exists.
    pub sampling: Option<Sampling>,
}

pub fn build(
    settings: &TelemetrySettings,
    health: &Arc<ExportHealth>,
    monitor_tokens: watch::Receiver<Option<TokenSource>>,
) -> Result<Pipelines, ExportSetupError> {
    let service_name = if settings.service_name.is_empty() {
        "restaurant-review".to_owned()
    } else {
        settings.service_name.clone()
    };
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let (sdk_sampler, sampling) = sampler(settings.sampler);
    let mut tracer = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_sampler(sdk_sampler);
    let mut logger = SdkLoggerProvider::builder().with_resource(resource.clone());
    let mut meter = SdkMeterProvider::builder().with_resource(resource.clone());
    let mut processors = Vec::new();
    let mut destinations = Vec::new();
    let ca = settings.ca_certificate_pem.as_deref();

    if let Some(ai) = &settings.app_insights {
        let client = ExportClient::new(ca, Some(monitor_tokens))?;
        let exporter =
            AppInsights::new_from_connection_string(ai.connection_string.clone(), client)
                .map_err(|e| ExportSetupError::ConnectionString(e.to_string()))?;
        let rated = RatedAppInsights {
            inner: exporter.clone(),
            default_percentage: static_percentage(settings.sampler),
        };
        let spans = Arc::new(BoundedSpanProcessor::start(
            rated,
            &resource,
            settings.queue,
            health.clone(),
        ));
        tracer = tracer.with_span_processor(Shared(spans.clone()));
        processors.push(spans);
        logger = logger.with_batch_exporter(Counted::new(exporter.clone(), health));
        meter = meter.with_reader(PeriodicReader::builder(Counted::new(exporter, health)).build());
        destinations.push("application-insights");
    }
    if let Some(otlp) = &settings.otlp {
        let client = || ExportClient::new(ca, None);
        let headers: HashMap<String, String> = otlp.headers.iter().cloned().collect();
        let url = |signal: &str| format!("{}/v1/{signal}", otlp.endpoint);
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_endpoint(url("traces"))
            .with_headers(headers.clone())
            .build()?;
        let logs = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_endpoint(url("logs"))
            .with_headers(headers.clone())
            .build()?;
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_endpoint(url("metrics"))
            .with_headers(headers)
            .with_temporality(Temporality::Cumulative)
            .build()?;
        let spans = Arc::new(BoundedSpanProcessor::start(
            spans,
            &resource,
            settings.queue,
            health.clone(),
        ));
        tracer = tracer.with_span_processor(Shared(spans.clone()));
        processors.push(spans);
        logger = logger.with_batch_exporter(Counted::new(logs, health));
        meter = meter.with_reader(PeriodicReader::builder(Counted::new(metrics, health)).build());
        destinations.push("otlp");
    }
    Ok(Pipelines {
        tracer: tracer.build(),
        logger: logger.build(),
        meter: meter.build(),
        processors,
        destinations,
        sampling,
    })
}

/// The SDK's sampler for `sampler`, and Application Insights' own when it is one of theirs.
fn sampler(sampler: Sampler) -> (Box<dyn ShouldSample>, Option<Sampling>) {
    let root = |root: ParentRoot| match root {
        ParentRoot::AlwaysOn => SdkSampler::AlwaysOn,
        ParentRoot::AlwaysOff => SdkSampler::AlwaysOff,
        ParentRoot::Ratio(ratio) => SdkSampler::TraceIdRatioBased(ratio),
    };
    let standard = match sampler {
        Sampler::AlwaysOn => SdkSampler::AlwaysOn,
        Sampler::AlwaysOff => SdkSampler::AlwaysOff,
        Sampler::Ratio(ratio) => SdkSampler::TraceIdRatioBased(ratio),
        Sampler::ParentBased(r) => SdkSampler::ParentBased(Box::new(root(r))),
        Sampler::RateLimited(per_second) => {
            let sampling = Sampling::rate_limited(per_second);
            return (Box::new(sampling.clone()), Some(sampling));
        }
        Sampler::FixedPercentage(ratio) => {
            let sampling = Sampling::fixed(ratio);
            return (Box::new(sampling.clone()), Some(sampling));
        }
    };
    (Box::new(standard), None)
}

/// The percentage every kept span stands for under the SDK's ratio samplers (Application
/// Insights' own samplers put theirs in each trace's `tracestate`).
fn static_percentage(sampler: Sampler) -> f64 {
    match sampler {
        Sampler::Ratio(ratio) | Sampler::ParentBased(ParentRoot::Ratio(ratio)) => ratio * 100.0,
        _ => 100.0,
    }
}

/// Application Insights counts a sampled item as 100 / its envelope's `sampleRate` items; the
/// exporter takes one rate for all it sends, so each batch goes as one upload per rate (under
/// the rate limiter a busy minute has a handful: the rates are 100 / 2^k).
#[derive(Debug)]
struct RatedAppInsights {
    inner: AppInsights,
    default_percentage: f64,
}

impl SpanExporter for RatedAppInsights {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut by_rate: Vec<(f64, Vec<SpanData>)> = Vec::new();
        for span in batch {
            let percentage = sampling::percentage_of(span.span_context.trace_state())
                .unwrap_or(self.default_percentage);
            match by_rate.iter_mut().find(|(p, _)| *p == percentage) {
                Some((_, spans)) => spans.push(span),
                None => by_rate.push((percentage, vec![span])),
            }
        }
        let mut result = Ok(());
        for (percentage, spans) in by_rate {
            let exporter = self.inner.clone().with_sample_rate(percentage / 100.0);
            if let Err(error) = SpanExporter::export(&exporter, spans).await {
                result = Err(error);
            }
        }
        result
    }
    fn force_flush(&self) -> OTelSdkResult {
        SpanExporter::force_flush(&self.inner)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        SpanExporter::shutdown_with_timeout(&self.inner, timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        SpanExporter::set_resource(&mut self.inner, resource);
    }
}

/// The tracer provider owns its processors; the application keeps a handle to flush them.
#[derive(Debug)]
struct Shared(Arc<BoundedSpanProcessor>);

impl opentelemetry_sdk::trace::SpanProcessor for Shared {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        self.0.on_end(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// Logs and metrics go through the SDK's own batching (logs: warn and above only; metrics:
/// aggregated, one export a minute); this wrapper counts what their exports lose.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    health: Arc<ExportHealth>,
}

impl<E> Counted<E> {
    fn new(inner: E, health: &Arc<ExportHealth>) -> Self {
        Self {
            inner,
            health: health.clone(),
        }
    }

    fn record(&self, count: usize, result: OTelSdkResult) -> OTelSdkResult {
        match &result {
            Ok(()) => self.health.exported(count),
            Err(error) => self.health.export_failed(count, &describe(error)),
        }
        result
    }
}

impl<E: LogExporter> LogExporter for Counted<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        // A failed batch of log records counts as one lost item.
        self.record(1, result)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.record(1, result)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
