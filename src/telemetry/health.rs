//! How export is going: what was dropped and why, said once in the log when it starts and once
//! when export resumes, and shown by `/health`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct ExportHealth {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed_exports: AtomicU64,
    state: Mutex<State>,
}

/// An outage that ends and starts again within this long (an export begun during the outage
/// failing after another succeeded) is not announced again.
const QUIET_BETWEEN_WARNINGS: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct State {
    /// Since the last successful export, items have been lost.
    dropping: bool,
    /// The log said so (once an outage, and at most once in `QUIET_BETWEEN_WARNINGS`).
    announced: bool,
    last_warning: Option<Instant>,
    dropped_at_start_of_outage: u64,
    last_error: Option<String>,
}

/// What `/health` shows under `telemetry`.
#[derive(Debug, Serialize)]
pub struct ExportStatus {
    pub exporting_to: Vec<&'static str>,
    pub state: &'static str,
    pub exported: u64,
    pub dropped: u64,
    pub failed_exports: u64,
    pub last_error: Option<String>,
}

impl ExportHealth {
    /// `count` items reached their destination.
    pub fn exported(&self, count: usize) {
        self.exported.fetch_add(count as u64, Ordering::Relaxed);
        let mut state = self.state.lock().expect("export health lock");
        if state.dropping {
            state.dropping = false;
            if std::mem::take(&mut state.announced) {
                let lost = self.dropped.load(Ordering::Relaxed) - state.dropped_at_start_of_outage;
                tracing::info!(dropped_meanwhile = lost, "telemetry export resumed");
            }
        }
    }

    /// `count` items were lost: the queue was full, or an export failed for good.
    pub fn dropped(&self, count: usize, reason: &str) {
        self.dropped.fetch_add(count as u64, Ordering::Relaxed);
        self.note_failure(reason);
    }

    /// A whole export failed (its items are counted by [`ExportHealth::dropped`]).
    pub fn export_failed(&self, count: usize, reason: &str) {
        self.failed_exports.fetch_add(1, Ordering::Relaxed);
        self.dropped(count, reason);
    }

    fn note_failure(&self, reason: &str) {
        let mut state = self.state.lock().expect("export health lock");
        if state.last_error.as_deref() != Some(reason) {
            state.last_error = Some(reason.to_owned());
        }
        if state.dropping {
            return;
        }
        state.dropping = true;
        let quiet = state
            .last_warning
            .is_some_and(|at| at.elapsed() < QUIET_BETWEEN_WARNINGS);
        if !quiet {
            state.announced = true;
            state.last_warning = Some(Instant::now());
            state.dropped_at_start_of_outage = self.dropped.load(Ordering::Relaxed);
            drop(state);
            // Once per outage: the drops themselves are counted in /health.
            tracing::warn!(
                target: "restaurant_review::telemetry::export",
                reason,
                "telemetry is being dropped; the app serves on, /health counts the drops, and export resumes by itself"
            );
        }
    }

    pub fn status(&self, exporting_to: Vec<&'static str>) -> ExportStatus {
        let state = self.state.lock().expect("export health lock");
        ExportStatus {
            exporting_to,
            state: if state.dropping { "dropping" } else { "ok" },
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed_exports: self.failed_exports.load(Ordering::Relaxed),
            last_error: state.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_and_a_success_ends_the_outage() {
        let health = ExportHealth::default();
        health.exported(3);
        health.dropped(2, "queue full");
        health.export_failed(5, "HTTP 429");
        let status = health.status(vec!["otlp"]);
        assert_eq!(
            (status.state, status.dropped, status.failed_exports),
            ("dropping", 7, 1)
        );
        assert_eq!(status.last_error.as_deref(), Some("HTTP 429"));
        health.exported(1);
        let status = health.status(vec!["otlp"]);
        assert_eq!(
            (status.state, status.exported, status.dropped),
            ("ok", 4, 7)
        );
    }
}
