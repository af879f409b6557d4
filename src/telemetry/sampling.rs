//! Application Insights' two samplers, as the Azure Monitor OpenTelemetry distros define them
//! (`OTEL_TRACES_SAMPLER=microsoft.rate_limited` or `microsoft.fixed_percentage`), the first
//! being their default since 2026: a few traces a second however busy the site is, while the
//! request metrics still count every request.
//!
//! Written here because no Rust crate has them: the OpenTelemetry SDK offers ratio samplers
//! only, and the Application Insights exporter takes one fixed rate for everything it sends.
//! The decision hashes the trace id the way the Azure SDKs do (so services sampling at the same
//! percentage keep or drop a trace together), and the rate limiter adapts the percentage like
//! their `RateLimitedSampler` (an exponentially decaying count of the last 0.1 s).
//!
//! Requests decide before their span exists ([`Sampling::decide_request`]): an unsampled
//! request gets no OpenTelemetry span at all, nor do the spans inside it ([`super::gate`]),
//! which is what keeps sampling cheap. A sampled trace carries its percentage in its
//! `tracestate` (key [`RATE_KEY`]) so every span of it reports the same item count.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

/// The `tracestate` entry holding a sampled trace's percentage (what Application Insights calls
/// its `sampleRate`; each item stands for 100 / rate requests or dependencies).
pub const RATE_KEY: &str = "ai-sample-rate";

/// How quickly the rate limiter follows a change in traffic (the Azure samplers' 0.1 s).
const ADAPTATION_SECONDS: f64 = 0.1;

/// A request's decision, made before its span: kept (at this percentage) or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RequestDecision {
    Sampled { percentage: f64 },
    Dropped,
}

/// The percentage a request decided, handed to [`Sampling`] inside the span's parent context.
#[derive(Debug, Clone, Copy)]
struct Decided(f64);

#[derive(Debug, Clone)]
pub struct Sampling {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    Fixed(f64),
    RateLimited(Arc<RateLimiter>),
}

impl Sampling {
    /// `microsoft.fixed_percentage`: `ratio` of traces, 0 to 1.
    pub fn fixed(ratio: f64) -> Self {
        Self {
            mode: Mode::Fixed(round_to_item_count(ratio.clamp(0.0, 1.0) * 100.0)),
        }
    }

    /// `microsoft.rate_limited`: about `per_second` traces a second at most.
    pub fn rate_limited(per_second: f64) -> Self {
        Self {
            mode: Mode::RateLimited(Arc::new(RateLimiter::new(per_second))),
        }
    }

    /// Decides a request that continues `remote` (its caller's context, possibly empty). A
    /// caller's trace is kept or dropped by its trace id, whatever its `sampled` flag says (a
    /// visitor must not choose what is recorded); a new trace at random.
    pub fn decide_request(&self, remote: &Context) -> RequestDecision {
        let percentage = self.percentage();
        let parent = remote.span();
        let score = if parent.span_context().is_valid() {
            trace_id_score(parent.span_context().trace_id())
        } else {
            rand::random::<f64>() * 100.0
        };
        if kept(score, percentage) {
            RequestDecision::Sampled { percentage }
        } else {
            RequestDecision::Dropped
        }
    }

    /// The parent context for a sampled request's span: the caller's, plus the decision.
    pub fn parent_for(remote: Context, percentage: f64) -> Context {
        remote.with_value(Decided(percentage))
    }

    fn percentage(&self) -> f64 {
        match &self.mode {
            Mode::Fixed(percentage) => *percentage,
            Mode::RateLimited(limiter) => limiter.percentage(),
        }
    }
}

impl ShouldSample for Sampling {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let parent = parent_context.map(|cx| cx.span().span_context().clone());
        let inherited = parent.as_ref().map(|p| p.trace_state().clone());
        let trace_state = inherited.unwrap_or_default();
        // A span inside this process follows its parent, percentage and all.
        if let Some(parent) = parent.as_ref().filter(|p| p.is_valid() && !p.is_remote()) {
            return SamplingResult {
                decision: if parent.is_sampled() {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state,
            };
        }
        // A request decided before its span; any other root (background work) decides now.
        let decided = parent_context.and_then(|cx| cx.get::<Decided>().copied());
        let percentage = match decided {
            Some(Decided(percentage)) => Some(percentage),
            None => {
                let percentage = self.percentage();
                kept(trace_id_score(trace_id), percentage).then_some(percentage)
            }
        };
        match percentage {
            Some(percentage) => SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: with_rate(&trace_state, percentage),
            },
            None => SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state,
            },
        }
    }
}

/// Whether a trace scoring `score` (0 to 100) is kept at `percentage`.
fn kept(score: f64, percentage: f64) -> bool {
    percentage > 0.0 && score < percentage
}

/// The percentage a sampled span was kept at, from its trace's `tracestate`.
pub fn percentage_of(trace_state: &TraceState) -> Option<f64> {
    trace_state
        .get(RATE_KEY)
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|p| *p > 0.0 && *p <= 100.0)
}

fn with_rate(trace_state: &TraceState, percentage: f64) -> TraceState {
    let value = format!("{percentage}");
    trace_state
        .insert(RATE_KEY, value)
        .unwrap_or_else(|_| trace_state.clone())
}

/// A trace id's place from 0 to 100, as the Azure SDKs compute it (a djb2 hash of the id's hex
/// text in 32-bit arithmetic): the same trace gets the same score in every service.
pub fn trace_id_score(trace_id: TraceId) -> f64 {
    let text = trace_id.to_string();
    let mut hash: i32 = 5381;
    for byte in text.bytes() {
        hash = (hash << 5).wrapping_add(hash).wrapping_add(i32::from(byte));
    }
    let hash = if hash == i32::MIN {
        i32::MAX
    } else {
        hash.abs()
    };
    f64::from(hash) / f64::from(i32::MAX) * 100.0
}

/// Rounds a percentage down to 100 / 2^k: every kept item then stands for a whole number of
/// items, and a busy minute uses a handful of rates (each rate is one upload, see export).
fn round_to_item_count(percentage: f64) -> f64 {
    if percentage >= 100.0 {
        return 100.0;
    }
    if percentage <= 0.0 || percentage.is_nan() {
        return 0.0;
    }
    let items = (100.0 / percentage).log2().ceil().exp2();
    100.0 / items
}

/// The adaptive percentage of `microsoft.rate_limited`.
#[derive(Debug)]
struct RateLimiter {
    per_second: f64,
    state: Mutex<Window>,
}

/// Decisions seen and time covered, both decaying with age.
#[derive(Debug)]
struct Window {
    count: f64,
    seconds: f64,
    last: Instant,
}

impl RateLimiter {
    fn new(per_second: f64) -> Self {
        Self {
            per_second: per_second.max(0.0),
            state: Mutex::new(Window {
                count: 0.0,
                seconds: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// Counts one decision and answers the percentage to decide it at.
    fn percentage(&self) -> f64 {
        let mut window = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(window.last).as_secs_f64();
        let decay = (-elapsed / ADAPTATION_SECONDS).exp();
        window.count = window.count * decay + 1.0;
        window.seconds = window.seconds * decay + elapsed;
        window.last = now;
        let rate = window.count / window.seconds.max(f64::MIN_POSITIVE);
        round_to_item_count(100.0 * (self.per_second / rate).min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags};

    #[test]
    fn trace_id_scores_match_the_azure_sdks_hash_and_spread_from_0_to_100() {
        let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let score = trace_id_score(id);
        assert!((0.0..=100.0).contains(&score));
        assert_eq!(score, trace_id_score(id), "the same trace, the same score");
        let below_half = (0..2000u128)
            .map(|i| {
                trace_id_score(TraceId::from(
                    i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834) + 1,
                ))
            })
            .filter(|s| *s < 50.0)
            .count();
        assert!(
            (800..1200).contains(&below_half),
            "{below_half} of 2000 below 50"
        );
    }

    #[test]
    fn percentages_round_down_so_each_item_stands_for_a_whole_number() {
        assert_eq!(round_to_item_count(100.0), 100.0);
        assert_eq!(round_to_item_count(60.0), 50.0);
        assert_eq!(round_to_item_count(10.0), 6.25);
        assert_eq!(round_to_item_count(0.0), 0.0);
    }

    #[test]
    fn the_rate_limiter_keeps_everything_when_quiet_and_a_few_a_second_when_busy() {
        let limiter = RateLimiter::new(5.0);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            limiter.percentage(),
            100.0,
            "one request after a quiet spell"
        );
        let mut last = 100.0;
        for _ in 0..20_000 {
            last = limiter.percentage();
        }
        assert!(last < 1.0, "thousands a second are sampled at {last}%");
    }

    #[test]
    fn a_child_span_follows_its_parent_and_every_span_of_a_sampled_trace_carries_its_rate() {
        use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_sampler(Sampling::fixed(0.25))
            .build();
        let tracer = provider.tracer("test");
        let root =
            tracer.start_with_context("request", &Sampling::parent_for(Context::new(), 25.0));
        assert!(root.span_context().is_sampled(), "decided before the span");
        assert_eq!(percentage_of(root.span_context().trace_state()), Some(25.0));
        let child = tracer.start_with_context("statement", &Context::new().with_span(root));
        assert!(child.span_context().is_sampled());
        assert_eq!(
            percentage_of(child.span_context().trace_state()),
            Some(25.0)
        );
    }

    #[test]
    fn a_callers_sampled_flag_does_not_force_a_trace_in() {
        let sampling = Sampling::fixed(0.0);
        let remote = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(42),
            SpanId::from(7),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ));
        assert_eq!(sampling.decide_request(&remote), RequestDecision::Dropped);
    }
}
