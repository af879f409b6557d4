//! Photos in Azure Blob Storage, signed in with the app's identity: no account key anywhere.
//!
//! Built on `object_store` rather than `azure_storage_blob` because (REFERENCE §4) its
//! user-delegation SAS signer works (Azurite accepts it; `azure_storage_blob`'s was refused),
//! it caches the delegation key across signatures, and it takes a custom credential provider,
//! which lets our [`TokenSource`] (cached, refreshed ahead of expiry) supply the bearer token.
//! What it lacks, creating a container, is one authenticated REST call made here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::Method;
use bytes::Bytes;
use object_store::azure::{AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, CredentialProvider, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig,
};

use super::{PhotoFormat, PhotoStore, StoreError, StoredPhoto};
use crate::config::{BlobSettings, PhotoUrlMode};
use crate::identity::TokenSource;

/// The scope of Azure Storage tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Every storage call gives up after this long; a hung storage account must not hold a request.
const STORAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SAS link on a page stays valid: long enough to load the page and open a photo.
const SAS_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Names never change (they are UUIDs), so photos may be cached for a year.
const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// The Blob REST version used for the container call.
const API_VERSION: &str = "2021-08-06";

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

pub struct AzurePhotoStore {
    store: MicrosoftAzure,
    settings: BlobSettings,
    tokens: TokenSource,
    http: reqwest::Client,
}

impl std::fmt::Debug for AzurePhotoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzurePhotoStore")
            .field("endpoint", &self.settings.endpoint)
            .field("container", &self.settings.container)
            .field("url_mode", &self.settings.url_mode)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(anyhow::Error::new(error).context(what.to_owned()))
}

fn timed_out(what: &str) -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!(
        "{what}: no answer from Blob Storage within {} s",
        STORAGE_TIMEOUT.as_secs()
    ))
}

impl AzurePhotoStore {
    pub fn new(settings: BlobSettings, tokens: TokenSource) -> Result<Self, StoreError> {
        let mut options = ClientOptions::new()
            .with_timeout(STORAGE_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(5));
        let mut http = reqwest::Client::builder()
            .timeout(STORAGE_TIMEOUT)
            .connect_timeout(Duration::from_secs(5));
        if let Some(pem) = &settings.ca_certificate_pem {
            let certificate = object_store::Certificate::from_pem(pem).map_err(|e| {
                StoreError::Io(
                    anyhow::Error::new(e).context("STORAGE_CA_CERT_FILE is not a PEM certificate"),
                )
            })?;
            options = options.with_root_certificate(certificate);
            let certificate = reqwest::Certificate::from_pem(pem).map_err(|e| {
                StoreError::Io(
                    anyhow::Error::new(e).context("STORAGE_CA_CERT_FILE is not a PEM certificate"),
                )
            })?;
            http = http.add_root_certificate(certificate);
        }
        let store = MicrosoftAzureBuilder::new()
            .with_account(&settings.account)
            .with_container_name(&settings.container)
            .with_endpoint(settings.endpoint.clone())
            .with_credentials(Arc::new(TokenCredentials(tokens.clone())))
            .with_client_options(options)
            // One quick retry; the user is waiting, and the review is not saved without it.
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: STORAGE_TIMEOUT,
                ..Default::default()
            })
            .build()
            .map_err(|e| {
                StoreError::Io(anyhow::Error::new(e).context("configuring Blob Storage"))
            })?;
        let http = http.build().map_err(|e| {
            StoreError::Io(anyhow::Error::new(e).context("configuring the HTTP client"))
        })?;
        Ok(Self {
            store,
            settings,
            tokens,
            http,
        })
    }

    /// The object_store client, for `doctor`'s probes.
    pub(crate) fn client(&self) -> &MicrosoftAzure {
        &self.store
    }

    fn blob_url(&self, key: &str) -> String {
        format!(
            "{}/{}/{}",
            self.settings.endpoint, self.settings.container, key
        )
    }

    /// Creates the container on an emulator (Azurite starts empty); on Azure it is
    /// provisioned with the storage account, as in the tutorial.
    async fn create_container_if_missing(&self) -> Result<(), StoreError> {
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| unavailable("getting a Blob Storage token", e))?;
        let url = format!(
            "{}/{}?restype=container",
            self.settings.endpoint, self.settings.container
        );
        let response = self
            .http
            .put(&url)
            .bearer_auth(token.secret())
            .header("x-ms-version", API_VERSION)
            .header("content-length", "0")
            .send()
            .await
            .map_err(|e| {
                unavailable(
                    &format!("cannot reach Blob Storage at {}", self.settings.endpoint),
                    e,
                )
            })?;
        match response.status().as_u16() {
            201 | 409 => Ok(()),
            status => Err(StoreError::Unavailable(anyhow::anyhow!(
                "creating container {:?} failed with HTTP {status}: {}",
                self.settings.container,
                response.text().await.unwrap_or_default()
            ))),
        }
    }
}

#[async_trait]
impl PhotoStore for AzurePhotoStore {
    #[tracing::instrument(name = "photos.blob.put", skip(self, bytes, content_type), fields(bytes = bytes.len()))]
    async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &'static str,
    ) -> Result<(), StoreError> {
        let attributes = Attributes::from_iter([
            (Attribute::ContentType, content_type),
            (Attribute::CacheControl, CACHE_CONTROL),
        ]);
        let options = PutOptions {
            // If-None-Match: * — never overwrite an existing photo.
            mode: PutMode::Create,
            attributes,
            ..Default::default()
        };
        let path = Path::from(key);
        let put = self.store.put_opts(&path, PutPayload::from(bytes), options);
        match tokio::time::timeout(STORAGE_TIMEOUT, put).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(object_store::Error::AlreadyExists { .. })) => {
                Err(StoreError::AlreadyExists(key.to_owned()))
            }
            Ok(Err(error)) => Err(unavailable("uploading a photo to Blob Storage", error)),
            Err(_) => Err(timed_out("uploading a photo to Blob Storage")),
        }
    }

    #[tracing::instrument(name = "photos.blob.get", skip(self))]
    async fn get(&self, key: &str) -> Result<Option<StoredPhoto>, StoreError> {
        let fetch = async {
            let result = self.store.get(&Path::from(key)).await?;
            result.bytes().await
        };
        let content_type = key
            .rsplit('.')
            .next()
            .and_then(PhotoFormat::from_extension)
            .map(PhotoFormat::content_type)
            .ok_or_else(|| {
                StoreError::Io(anyhow::anyhow!("photo key without a known extension"))
            })?;
        match tokio::time::timeout(STORAGE_TIMEOUT, fetch).await {
            Ok(Ok(bytes)) => Ok(Some(StoredPhoto {
                bytes,
                content_type,
            })),
            Ok(Err(object_store::Error::NotFound { .. })) => Ok(None),
            Ok(Err(error)) => Err(unavailable("reading a photo from Blob Storage", error)),
            Err(_) => Err(timed_out("reading a photo from Blob Storage")),
        }
    }

    #[tracing::instrument(name = "photos.blob.delete", skip(self))]
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = Path::from(key);
        match tokio::time::timeout(STORAGE_TIMEOUT, self.store.delete(&path)).await {
            Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(error)) => Err(unavailable("deleting a photo from Blob Storage", error)),
            Err(_) => Err(timed_out("deleting a photo from Blob Storage")),
        }
    }

    async fn url(&self, key: &str) -> Result<String, StoreError> {
        match self.settings.url_mode {
            PhotoUrlMode::Public => Ok(self.blob_url(key)),
            PhotoUrlMode::Proxy => Ok(format!("{}{key}", super::local::URL_PREFIX)),
            PhotoUrlMode::Sas => {
                // A short-lived, read-only user-delegation SAS; the delegation key is cached.
                let path = Path::from(key);
                let sign = self.store.signed_url(Method::GET, &path, SAS_LIFETIME);
                match tokio::time::timeout(STORAGE_TIMEOUT, sign).await {
                    Ok(Ok(url)) => Ok(url.to_string()),
                    Ok(Err(error)) => Err(unavailable("signing a photo link", error)),
                    Err(_) => Err(timed_out("signing a photo link")),
                }
            }
        }
    }

    #[tracing::instrument(name = "photos.blob.check", skip(self), fields(endpoint = %self.settings.endpoint, container = %self.settings.container))]
    async fn check(&self) -> Result<(), StoreError> {
        if self.settings.emulator {
            self.create_container_if_missing().await?;
        }
        let prefix = Path::from("thumbs");
        let list = self.store.list_with_delimiter(Some(&prefix));
        let explain = |what: String| {
            StoreError::Unavailable(anyhow::anyhow!(
                "Blob Storage container {:?} at {}: {what}",
                self.settings.container,
                self.settings.endpoint
            ))
        };
        match tokio::time::timeout(STORAGE_TIMEOUT, list).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => {
                let (failure, said) = classify(&error);
                Err(explain(match failure {
                    BlobFailure::ContainerNotFound => format!(
                        "the container does not exist; create it (the tutorial names it \"photos\") ({said})"
                    ),
                    BlobFailure::AccessDenied => format!(
                        "access denied; give the app's identity the \"Storage Blob Data Contributor\" role on the account ({said})"
                    ),
                    BlobFailure::TokenRefused => format!("the app's token was refused ({said})"),
                    BlobFailure::Other => format!(
                        "cannot reach it; check STORAGE_ACCOUNT_NAME and the network ({said})"
                    ),
                }))
            }
            Err(_) => Err(explain(format!(
                "no answer within {} s",
                STORAGE_TIMEOUT.as_secs()
            ))),
        }
    }
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
