//! Keeps unsampled requests away from the OpenTelemetry layer altogether.
//!
//! `tracing-opentelemetry` builds an OpenTelemetry span for every `tracing` span it sees and
//! asks the sampler only when the span starts, so an unsampled request would still pay for
//! its span builders, attributes and context switches on every poll (about 20 µs a page,
//! measured in bench/telemetry). With Application Insights' samplers the request decides
//! first (see `sampling`); an unsampled one opens its span under [`UNSAMPLED_TARGET`], and
//! this wrapper hides that span and everything opened inside it from the layer it wraps.
//! Nothing in tracing-subscriber or tracing-opentelemetry does this (a per-layer filter sees
//! only the spans it enabled, so it cannot tell a child of an unsampled request from a root).

use std::any::TypeId;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The target of the span of a request its sampler dropped.
pub const UNSAMPLED_TARGET: &str = "restaurant_review::telemetry::unsampled";

/// Marks a span (and through it its children) as outside every exported trace.
struct Hidden;

pub struct SampledOnly<L> {
    inner: L,
}

impl<L> SampledOnly<L> {
    pub fn new(inner: L) -> Self {
        Self { inner }
    }
}

fn hidden<S>(id: &Id, ctx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.span(id)
        .is_some_and(|span| span.extensions().get::<Hidden>().is_some())
}

impl<S, L> Layer<S> for SampledOnly<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(
        &self,
        metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let unsampled = span.metadata().target() == UNSAMPLED_TARGET
            || span
                .parent()
                .is_some_and(|parent| parent.extensions().get::<Hidden>().is_some());
        if unsampled {
            span.extensions_mut().insert(Hidden);
            return;
        }
        drop(span);
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.inner.max_level_hint()
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !hidden(id, &ctx) {
            self.inner.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        if !hidden(id, &ctx) && !hidden(follows, &ctx) {
            self.inner.on_follows_from(id, follows, ctx);
        }
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let inside_hidden = ctx
            .event_span(event)
            .is_some_and(|span| span.extensions().get::<Hidden>().is_some());
        if !inside_hidden {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !hidden(id, &ctx) {
            self.inner.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !hidden(id, &ctx) {
            self.inner.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !hidden(&id, &ctx) {
            self.inner.on_close(id, ctx);
        }
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    #[doc(hidden)]
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // SAFETY: the wrapped layer answers for its own types (tracing-opentelemetry's
        // `WithContext`, which `OpenTelemetrySpanExt` looks up), exactly as tracing-subscriber's
        // own wrappers (`Filtered`, `Option<L>`) forward it.
        unsafe { self.inner.downcast_raw(id) }
    }
}
