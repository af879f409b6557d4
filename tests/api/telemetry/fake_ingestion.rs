//! A local stand-in for Application Insights' ingestion endpoint (`/v2/track`), over HTTPS
//! with a test CA. Like Azure with local authentication disabled, it accepts only a bearer
//! token whose audience is Azure Monitor and which has not expired (401 otherwise); it
//! records each envelope that arrives (gunzipped JSON) and the tokens it saw, and can be told
//! to refuse (401, 429, 500) or to be down (connections closed at once).

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::helpers::fake_identity::claims;
use crate::helpers::test_ca::{TestCa, serve_tls};

/// The instrumentation key of the connection string (names the resource; not a credential).
pub const INSTRUMENTATION_KEY: &str = "11111111-2222-3333-4444-555555555555";
const MONITOR_AUDIENCES: [&str; 2] = ["https://monitor.azure.com", "https://monitor.azure.com/"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    Refuse(u16),
    /// Connections are accepted and closed before a byte is read.
    Down,
}

#[derive(Default)]
struct Shared {
    mode: Mutex<Option<Mode>>,
    envelopes: Mutex<Vec<Value>>,
    /// Every decompressed body, to search for what must never be sent.
    bodies: Mutex<Vec<String>>,
    tokens: Mutex<Vec<String>>,
    unauthorized: Mutex<u64>,
    /// Envelopes accepted, kept or not.
    received: AtomicU64,
    /// Counting only (the benchmark): nothing kept.
    discard: AtomicBool,
}

pub struct FakeIngestion {
    port: u16,
    shared: Arc<Shared>,
    _ca_dir: TempDir,
    ca_file: std::path::PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl FakeIngestion {
    pub async fn start() -> Self {
        let ca = TestCa::new("Fake Ingestion Test CA");
        let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
        let ca_dir = tempfile::tempdir().unwrap();
        let ca_file = ca_dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let acceptor = leaf.tls_acceptor();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/v2/track", post(track))
            .with_state(shared.clone());
        let down = shared.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if *down.mode.lock().unwrap() == Some(Mode::Down) {
                    drop(stream);
                    continue;
                }
                serve_tls(&acceptor, stream, &router);
            }
        });
        Self {
            port,
            shared,
            _ca_dir: ca_dir,
            ca_file,
            server,
        }
    }

    /// `APPLICATIONINSIGHTS_CONNECTION_STRING` as the portal shows it, pointing here.
    pub fn connection_string(&self) -> String {
        format!(
            "InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint=https://127.0.0.1:{}/;LiveEndpoint=https://127.0.0.1:{}/",
            self.port, self.port
        )
    }

    /// The test CA's certificate (`TELEMETRY_CA_CERT_FILE`).
    pub fn ca_file(&self) -> String {
        self.ca_file.display().to_string()
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = Some(mode);
    }

    /// Counts what arrives without keeping it (for the benchmark's long loads).
    #[allow(dead_code)]
    pub fn discard_envelopes(&self) {
        self.shared.discard.store(true, Ordering::Relaxed);
    }

    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    pub fn envelopes(&self) -> Vec<Value> {
        self.shared.envelopes.lock().unwrap().clone()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.shared.bodies.lock().unwrap().clone()
    }

    /// The bearer tokens of accepted uploads, in order.
    pub fn tokens(&self) -> Vec<String> {
        self.shared.tokens.lock().unwrap().clone()
    }

    /// Uploads refused for a missing, expired or wrong-audience token.
    pub fn unauthorized(&self) -> u64 {
        *self.shared.unauthorized.lock().unwrap()
    }

    /// Waits (up to 20 s) until an envelope satisfies `found`; returns it.
    pub async fn wait_for(&self, what: &str, found: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            if let Some(envelope) = self.envelopes().into_iter().find(|e| found(e)) {
                return envelope;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "no envelope for {what} arrived; got: {:#?}",
            self.envelopes()
                .iter()
                .map(|e| (kind(e), name(e)))
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for FakeIngestion {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `Request`, `RemoteDependency`, `Exception`, `Message`, `Metric`, ...
pub fn kind(envelope: &Value) -> &str {
    envelope["name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("Microsoft.ApplicationInsights.")
}

pub fn name(envelope: &Value) -> &str {
    envelope["data"]["baseData"]["name"]
        .as_str()
        .unwrap_or_default()
}

pub fn operation_id(envelope: &Value) -> &str {
    envelope["tags"]["ai.operation.id"]
        .as_str()
        .unwrap_or_default()
}

pub fn base_data(envelope: &Value) -> &Value {
    &envelope["data"]["baseData"]
}

async fn track(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mode = shared.mode.lock().unwrap().unwrap_or(Mode::Accept);
    if let Mode::Refuse(status) = mode {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token.filter(|t| valid_monitor_token(t)) else {
        *shared.unauthorized.lock().unwrap() += 1;
        return (StatusCode::UNAUTHORIZED, "invalid or missing bearer token").into_response();
    };
    if !shared.discard.load(Ordering::Relaxed) {
        shared.tokens.lock().unwrap().push(token.to_owned());
    }
    // The exporter gzips its uploads; plain JSON is accepted too, as by Azure.
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut text = String::new();
    let read = if gzipped {
        flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text)
    } else {
        (&body[..]).read_to_string(&mut text)
    };
    if read.is_err() {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    }
    if shared.discard.load(Ordering::Relaxed) {
        // Counting only: one instrumentation key per envelope, without parsing the JSON.
        let count = text.matches("\"iKey\"").count();
        shared.received.fetch_add(count as u64, Ordering::Relaxed);
        return axum::Json(serde_json::json!({
            "itemsReceived": count, "itemsAccepted": count, "errors": []
        }))
        .into_response();
    }
    let Ok(items) = serde_json::from_str::<Vec<Value>>(&text) else {
        return (StatusCode::BAD_REQUEST, "not an envelope array").into_response();
    };
    let count = items.len();
    shared.received.fetch_add(count as u64, Ordering::Relaxed);
    if !shared.discard.load(Ordering::Relaxed) {
        shared.bodies.lock().unwrap().push(text);
        shared.envelopes.lock().unwrap().extend(items);
    }
    axum::Json(serde_json::json!({
        "itemsReceived": count, "itemsAccepted": count, "errors": []
    }))
    .into_response()
}

/// Azure checks the signature too; the fake identity's tokens are unsigned, so audience and
/// expiry are what can be checked (as Azurite does for Storage).
fn valid_monitor_token(token: &str) -> bool {
    if token.split('.').count() != 3 {
        return false;
    }
    let claims = std::panic::catch_unwind(|| claims(token));
    let Ok(claims) = claims else { return false };
    let audience_ok = claims["aud"]
        .as_str()
        .is_some_and(|aud| MONITOR_AUDIENCES.contains(&aud));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let unexpired = claims["exp"].as_i64().is_some_and(|exp| exp > now);
    audience_ok && unexpired
}
