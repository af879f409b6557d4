//! A Blob Storage endpoint that refuses every request with 403 `AuthorizationPermissionMismatch`,
//! as Azure does for an identity without a data role. Azurite has no RBAC, so the doctor's
//! "missing role" diagnosis is tested against this instead; it serves HTTPS with a certificate
//! from a test CA, like the Azurite rig.
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use crate::helpers::test_ca::{TestCa, serve_tls};

pub struct ForbiddenStorage {
    pub port: u16,
    pub ca: TestCa,
    server: tokio::task::JoinHandle<()>,
}

async fn refuse() -> impl IntoResponse {
    (
        StatusCode::FORBIDDEN,
        [
            ("x-ms-error-code", "AuthorizationPermissionMismatch"),
            ("content-type", "application/xml"),
        ],
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code>\
         <Message>This request is not authorized to perform this operation using this permission.</Message></Error>",
    )
}

impl ForbiddenStorage {
    pub async fn start() -> Self {
        let ca = TestCa::new("Forbidden Storage Test CA");
        let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
        let acceptor = leaf.tls_acceptor();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let router = Router::new().fallback(refuse);
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                serve_tls(&acceptor, stream, &router);
            }
        });
        Self { port, ca, server }
    }

    /// The endpoint as the app is configured with it (`STORAGE_ACCOUNT_NAME`).
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}/devstoreaccount1", self.port)
    }
}

impl Drop for ForbiddenStorage {
    fn drop(&mut self) {
        self.server.abort();
    }
}
