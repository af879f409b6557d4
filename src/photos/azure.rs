//! Azure Blob Storage, signed in with the app's identity: no account key anywhere.
//!
//! Built on `object_store` rather than `azure_storage_blob` because its user-delegation SAS
//! signer works (Azurite accepts it; `azure_storage_blob`'s was refused), it caches the
//! delegation key across signatures, and it takes a custom credential provider, which lets our
//! [`TokenSource`] (cached, refreshed ahead of expiry) supply the bearer token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::azure::{AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::{ClientOptions, CredentialProvider, RetryConfig};

use super::StoreError;
use crate::config::BlobSettings;
use crate::identity::TokenSource;

/// The scope of Azure Storage tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Each HTTP call to Blob Storage gives up after this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Supplies the token source's current token to object_store, which asks on every request.
#[derive(Debug)]
struct TokenCredentials(TokenSource);

#[async_trait]
impl CredentialProvider for TokenCredentials {
    type Credential = AzureCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AzureCredential>> {
        let token = self
            .0
            .token()
            .await
            .map_err(|error| object_store::Error::Generic {
                store: "MicrosoftAzure",
                source: Box::new(error),
            })?;
        Ok(Arc::new(AzureCredential::BearerToken(
            token.secret().to_owned(),
        )))
    }
}

/// The object_store client for the configured container, trusting `STORAGE_CA_CERT_FILE` too.
pub fn client(settings: &BlobSettings, tokens: TokenSource) -> Result<MicrosoftAzure, StoreError> {
    let misconfigured = |e: object_store::Error, what: &str| {
        StoreError::Io(anyhow::Error::new(e).context(what.to_owned()))
    };
    let mut options = ClientOptions::new()
        .with_timeout(CALL_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(5));
    if let Some(pem) = &settings.ca_certificate_pem {
        let certificate = object_store::Certificate::from_pem(pem)
            .map_err(|e| misconfigured(e, "STORAGE_CA_CERT_FILE is not a PEM certificate"))?;
        options = options.with_root_certificate(certificate);
    }
    MicrosoftAzureBuilder::new()
        .with_account(&settings.account)
        .with_container_name(&settings.container)
        .with_endpoint(settings.endpoint.clone())
        .with_credentials(Arc::new(TokenCredentials(tokens)))
        .with_client_options(options)
        // Each call a dependency span carrying the trace context (see telemetry::outgoing).
        .with_http_connector(crate::telemetry::outgoing::TracedConnector)
        // One quick retry; the user is waiting, and the review is not saved without it.
        .with_retry(RetryConfig {
            max_retries: 1,
            retry_timeout: CALL_TIMEOUT,
            ..Default::default()
        })
        .build()
        .map_err(|e| misconfigured(e, "configuring Blob Storage"))
}

/// What went wrong in a Blob Storage call, for messages that say what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobFailure {
    ContainerNotFound,
    /// The identity has no data role (403 `AuthorizationPermissionMismatch`).
    AccessDenied,
    /// The token itself was refused (expired, wrong audience).
    TokenRefused,
    Other,
}

/// Classifies a failed call and summarises what the service said, in one line. object_store
/// reports some failures (a list on a missing container) as `Generic`, with the response body
/// in the message, so the service's error code, a stable part of the Blob REST API, is read
/// from there when the variant does not say.
pub fn classify(error: &object_store::Error) -> (BlobFailure, String) {
    let chain = crate::error_chain(error);
    let between = |open: &str, close: &str| {
        let start = chain.find(open)? + open.len();
        let end = chain[start..].find(close)? + start;
        Some(chain[start..end].trim().to_owned())
    };
    let code = between("<Code>", "</Code>");
    let message = between("<Message>", "</Message>").map(|m| {
        m.split("RequestId")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    });
    let failure = match (error, code.as_deref()) {
        (_, Some("ContainerNotFound")) | (object_store::Error::NotFound { .. }, _) => {
            BlobFailure::ContainerNotFound
        }
        (_, Some("AuthorizationPermissionMismatch" | "AuthorizationFailure"))
        | (object_store::Error::PermissionDenied { .. }, _) => BlobFailure::AccessDenied,
        (_, Some("AuthenticationFailed" | "InvalidAuthenticationInfo"))
        | (object_store::Error::Unauthenticated { .. }, _) => BlobFailure::TokenRefused,
        _ => BlobFailure::Other,
    };
    let said = match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => chain,
    };
    (failure, said)
}
