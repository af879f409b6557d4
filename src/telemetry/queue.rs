//! The bounded queue between request handling and span export.
//!
//! Written here instead of using the SDK's `BatchSpanProcessor` because that one counts the
//! spans it drops but keeps the count to itself (one internal log line at shutdown); the issue
//! asks for drops counted, reported once and shown in `/health`. Ending a span costs a
//! `try_send` into a bounded channel; a full queue drops and counts, never waits.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use super::health::ExportHealth;
use crate::config::QueueSettings;

enum Message {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
pub struct BoundedSpanProcessor {
    sender: mpsc::Sender<Message>,
    /// Flushes and shutdowns travel outside the bounded queue, so a full queue cannot lose them.
    control: mpsc::UnboundedSender<Message>,
    health: Arc<ExportHealth>,
}

impl BoundedSpanProcessor {
    /// Starts the export task on the current runtime.
    pub fn start<E>(
        mut exporter: E,
        resource: &Resource,
        queue: QueueSettings,
        health: Arc<ExportHealth>,
    ) -> Self
    where
        E: SpanExporter + 'static,
    {
        exporter.set_resource(resource);
        let (sender, receiver) = mpsc::channel(queue.max_queue);
        let (control, control_receiver) = mpsc::unbounded_channel();
        tokio::spawn(export_loop(
            exporter,
            receiver,
            control_receiver,
            queue,
            health.clone(),
        ));
        Self {
            sender,
            control,
            health,
        }
    }

    /// Asks for everything queued so far to be exported; resolves when it has been tried.
    pub fn flush(&self) -> oneshot::Receiver<()> {
        let (done, wait) = oneshot::channel();
        let _ = self.control.send(Message::Flush(done));
        wait
    }
}

impl SpanProcessor for BoundedSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.sender.try_send(Message::Span(Box::new(span))).is_err() {
            self.health.dropped(
                1,
                "the export queue is full (ingestion slow or unreachable)",
            );
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        drop(self.flush());
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // The export task ends when the processor (its sender) is dropped; flush first.
        drop(self.flush());
        Ok(())
    }

    /// The exporter got the resource at [`BoundedSpanProcessor::start`].
    fn set_resource(&mut self, _resource: &Resource) {}
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut receiver: mpsc::Receiver<Message>,
    mut control: mpsc::UnboundedReceiver<Message>,
    queue: QueueSettings,
    health: Arc<ExportHealth>,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(queue.max_batch);
    let mut tick = tokio::time::interval(queue.delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut flushed = None;
        tokio::select! {
            message = receiver.recv() => match message {
                Some(Message::Span(span)) => {
                    batch.push(*span);
                    if batch.len() < queue.max_batch {
                        continue;
                    }
                }
                Some(Message::Flush(done)) => flushed = Some(done),
                None => {
                    export(&exporter, &mut batch, &queue, &health).await;
                    return;
                }
            },
            Some(Message::Flush(done)) = control.recv() => {
                while let Ok(Message::Span(span)) = receiver.try_recv() {
                    batch.push(*span);
                }
                flushed = Some(done);
            }
            _ = tick.tick() => {}
        }
        while !batch.is_empty() {
            export(&exporter, &mut batch, &queue, &health).await;
            if flushed.is_none() {
                break;
            }
            while batch.len() < queue.max_batch {
                match receiver.try_recv() {
                    Ok(Message::Span(span)) => batch.push(*span),
                    _ => break,
                }
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

/// Exports (up to `max_batch` of) `batch`, within the export timeout; what fails is dropped.
async fn export<E: SpanExporter>(
    exporter: &E,
    batch: &mut Vec<SpanData>,
    queue: &QueueSettings,
    health: &ExportHealth,
) {
    if batch.is_empty() {
        return;
    }
    let take = batch.len().min(queue.max_batch);
    let spans: Vec<SpanData> = batch.drain(..take).collect();
    let count = spans.len();
    match tokio::time::timeout(queue.export_timeout, exporter.export(spans)).await {
        Ok(Ok(())) => health.exported(count),
        Ok(Err(error)) => health.export_failed(count, &describe(&error)),
        Err(_) => health.export_failed(
            count,
            &format!(
                "the export did not finish within {} ms",
                queue.export_timeout.as_millis()
            ),
        ),
    }
}

pub fn describe(error: &OTelSdkError) -> String {
    // Errors name the endpoint and the status, never a header (the bearer token).
    let text = error.to_string();
    text.chars().take(300).collect()
}
