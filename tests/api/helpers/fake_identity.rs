//! A local stand-in for the Azure managed-identity endpoint that speaks the real wire protocol
//! of App Service (`IDENTITY_ENDPOINT`, `X-IDENTITY-HEADER`, api-version 2019-08-01). It mints
//! JWTs with real `aud`/`iss`/`oid`/`tid`/`exp` claims and a chosen lifetime, counts calls, can
//! be told to fail (500, throttled with 429 and `Retry-After`, or hanging), and can run a hook
//! for every minted token (the PostgreSQL emulation makes each token the role's password).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use time::OffsetDateTime;

pub const APP_SERVICE_API_VERSION: &str = "2019-08-01";

/// How the endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// 500 Internal Server Error.
    Fail500,
    /// 429 Too Many Requests with `Retry-After: <seconds>`, as App Service and IMDS throttle.
    Fail429 {
        retry_after: u64,
    },
    /// Accepts the request and does not answer while this mode lasts; a held request is then
    /// answered as the next mode says (the endpoint "comes back").
    Hang,
}

/// One request that reached the endpoint: when, and how it was answered.
#[derive(Debug, Clone)]
pub struct Call {
    pub resource: String,
    pub received: std::time::Instant,
    pub answered_at: std::time::Instant,
    pub answer: Answer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Token,
    Status(u16),
}

pub type MintHook =
    Arc<dyn Fn(String, OffsetDateTime) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Shared {
    client_id: String,
    object_id: String,
    tenant_id: String,
    header_secret: String,
    lifetime: Duration,
    mode: Mutex<Mode>,
    requests: AtomicU64,
    minted: AtomicU64,
    tokens: Mutex<Vec<String>>,
    calls: Mutex<Vec<Call>>,
    on_mint: Mutex<Option<MintHook>>,
}

pub struct FakeIdentity {
    pub app_service_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeIdentity {
    pub async fn start(lifetime: Duration) -> Self {
        let shared = Arc::new(Shared {
            client_id: uuid::Uuid::new_v4().to_string(),
            object_id: uuid::Uuid::new_v4().to_string(),
            tenant_id: uuid::Uuid::new_v4().to_string(),
            header_secret: format!("identity-header-{}", uuid::Uuid::new_v4().simple()),
            lifetime,
            mode: Mutex::new(Mode::Normal),
            requests: AtomicU64::new(0),
            minted: AtomicU64::new(0),
            tokens: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            on_mint: Mutex::new(None),
        });
        let router = Router::new()
            .route("/msi/token", get(app_service))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            app_service_url: format!("http://{addr}/msi/token"),
            shared,
            server,
        }
    }

    /// The user-assigned identity's client id this endpoint knows.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// The `IDENTITY_HEADER` value App Service would set.
    pub fn header_secret(&self) -> &str {
        &self.shared.header_secret
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn on_mint(&self, hook: MintHook) {
        *self.shared.on_mint.lock().unwrap() = Some(hook);
    }

    /// Every request that reached the endpoint, answered or not.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn minted(&self) -> u64 {
        self.shared.minted.load(Ordering::SeqCst)
    }

    /// Every answered token request (the App Service route), in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// A token for `resource` handed to the test itself (e.g. to inspect storage), recorded
    /// like every other token but not counted as a request.
    pub fn issue(&self, resource: &str) -> String {
        let (token, _) = mint(&self.shared, resource);
        self.shared.tokens.lock().unwrap().push(token.clone());
        token
    }

    /// Every token handed out so far (to check none leaks into logs or pages).
    pub fn tokens(&self) -> Vec<String> {
        self.shared.tokens.lock().unwrap().clone()
    }
}

impl Drop for FakeIdentity {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Decodes a JWT's claims (no signature check, like Azurite).
pub fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn mint(shared: &Shared, resource: &str) -> (String, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    let expires = now + shared.lifetime;
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "fake-signing-key"});
    let claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", shared.tenant_id),
        "iat": now.unix_timestamp(),
        "nbf": now.unix_timestamp(),
        "exp": expires.unix_timestamp(),
        "oid": shared.object_id,
        "sub": shared.object_id,
        "tid": shared.tenant_id,
        "appid": shared.client_id,
        "idtyp": "app",
        "ver": "1.0",
    });
    let encode = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let signature = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 64]>());
    let token = format!("{}.{}.{}", encode(&header), encode(&claims), signature);
    (token, expires)
}

/// Answers with the current failure mode, if any; in `Hang` waits until the mode changes.
async fn failure(shared: &Shared) -> Option<Response> {
    let mode = loop {
        let mode = *shared.mode.lock().unwrap();
        if mode != Mode::Hang {
            break mode;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    match mode {
        Mode::Normal | Mode::Hang => None,
        Mode::Fail429 { retry_after } => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after.to_string())],
                "fake identity endpoint: too many requests",
            )
                .into_response(),
        ),
        Mode::Fail500 => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "fake identity endpoint: internal error",
            )
                .into_response(),
        ),
    }
}

fn not_assigned() -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "statusCode": 400,
            "message": "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.",
        })),
    )
        .into_response()
}

async fn finish_mint(shared: &Shared, resource: &str) -> (String, OffsetDateTime) {
    let (token, expires) = mint(shared, resource);
    let hook = shared.on_mint.lock().unwrap().clone();
    if let Some(hook) = hook {
        hook(token.clone(), expires).await;
    }
    shared.tokens.lock().unwrap().push(token.clone());
    shared.minted.fetch_add(1, Ordering::SeqCst);
    (token, expires)
}

fn record(shared: &Shared, resource: &str, received: std::time::Instant, answer: Answer) {
    shared.calls.lock().unwrap().push(Call {
        resource: resource.to_owned(),
        received,
        answered_at: std::time::Instant::now(),
        answer,
    });
}

async fn app_service(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let received = std::time::Instant::now();
    if headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        != Some(shared.header_secret.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-IDENTITY-HEADER",
        )
            .into_response();
    }
    if query.get("api-version").map(String::as_str) != Some(APP_SERVICE_API_VERSION) {
        return (StatusCode::BAD_REQUEST, "unsupported api-version").into_response();
    }
    let Some(resource) = query.get("resource").cloned() else {
        return (StatusCode::BAD_REQUEST, "resource is required").into_response();
    };
    if query
        .get("client_id")
        .is_some_and(|id| id != &shared.client_id)
    {
        return not_assigned();
    }
    if let Some(response) = failure(&shared).await {
        record(
            &shared,
            &resource,
            received,
            Answer::Status(response.status().as_u16()),
        );
        return response;
    }
    let (token, expires) = finish_mint(&shared, &resource).await;
    record(&shared, &resource, received, Answer::Token);
    axum::Json(json!({
        "access_token": token,
        "expires_on": expires.unix_timestamp().to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": shared.client_id,
    }))
    .into_response()
}
