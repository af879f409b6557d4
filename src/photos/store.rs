//! The one storage seam: object_store underneath (a local directory, Azure Blob Storage, or
//! memory in tests), photo keys on top, and how pages link to what is stored.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use bytes::Bytes;
use object_store::azure::MicrosoftAzure;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};

use super::azure::{self as blob, BlobFailure};
use super::{PhotoKey, PhotoName, ProcessedPhoto, URL_PREFIX};
use crate::config::{BlobSettings, PhotoUrlMode};
use crate::error_chain;
use crate::identity::TokenSource;

/// Every storage call gives up after this long; a hung storage account must not hold a request.
pub(crate) const STORAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a SAS link on a page stays valid: long enough to load the page and open a photo.
const SAS_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Names never change (they are UUIDs), so photos may be cached for a year.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// How long deletes that failed keep being retried, and how often.
const DELETE_RETRY_FOR: Duration = Duration::from_secs(15 * 60);
const DELETE_RETRY_FIRST_PAUSE: Duration = Duration::from_secs(1);
const DELETE_RETRY_LONGEST_PAUSE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a photo named {0} already exists")]
    AlreadyExists(String),
    #[error("photo storage is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("photo storage failed")]
    Io(#[source] anyhow::Error),
}

/// A photo read back from a store.
#[derive(Debug, Clone)]
pub struct StoredPhoto {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

/// How a page links to a stored photo.
enum Links {
    /// `/photos/<key>`, served by the app (local directory, memory, `proxy` mode).
    App,
    /// The blob's own URL (a container with anonymous read access).
    Public { base: String },
    /// A short-lived read-only user-delegation SAS (the delegation key is cached by the signer).
    Sas(Arc<MicrosoftAzure>),
}

enum Backend {
    Local(PathBuf),
    Azure { endpoint: String, container: String },
    Memory,
}

/// Where photos are kept. Never overwrites an object; cheap to clone.
#[derive(Clone)]
pub struct PhotoStore {
    objects: Arc<dyn ObjectStore>,
    links: Arc<Links>,
    backend: Arc<Backend>,
}

impl fmt::Debug for PhotoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let links = match self.links.as_ref() {
            Links::App => "app",
            Links::Public { .. } => "public",
            Links::Sas(_) => "sas",
        };
        match self.backend.as_ref() {
            Backend::Local(dir) => write!(f, "PhotoStore(local {})", dir.display()),
            Backend::Azure {
                endpoint,
                container,
            } => write!(f, "PhotoStore(blob {endpoint}/{container}, {links} links)"),
            Backend::Memory => write!(f, "PhotoStore(memory)"),
        }
    }
}

impl PhotoStore {
    /// Files under `dir` (created if missing), served by the app at `/photos/<key>`.
    pub fn local(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| io(e, &format!("creating {}", dir.display())))?;
        let objects = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| io(e, &format!("opening {}", dir.display())))?;
        Ok(Self::new(objects, Links::App, Backend::Local(dir)))
    }

    /// Azure Blob Storage, signed in with the app's identity through `tokens`.
    pub fn azure(settings: &BlobSettings, tokens: TokenSource) -> Result<Self, StoreError> {
        let client = Arc::new(blob::client(settings, tokens)?);
        let links = match settings.url_mode {
            PhotoUrlMode::Proxy => Links::App,
            PhotoUrlMode::Public => Links::Public {
                base: format!("{}/{}", settings.endpoint, settings.container),
            },
            PhotoUrlMode::Sas => Links::Sas(client.clone()),
        };
        let backend = Backend::Azure {
            endpoint: settings.endpoint.clone(),
            container: settings.container.clone(),
        };
        Ok(Self {
            objects: client,
            links: Arc::new(links),
            backend: Arc::new(backend),
        })
    }

    /// Memory only, for tests.
    pub fn in_memory() -> Self {
        Self::new(InMemory::new(), Links::App, Backend::Memory)
    }

    fn new(objects: impl ObjectStore, links: Links, backend: Backend) -> Self {
        Self {
            objects: Arc::new(objects),
            links: Arc::new(links),
            backend: Arc::new(backend),
        }
    }

    /// The same failure reads as an outage from a remote service, as a fault from a local disk.
    fn failed(&self, what: &str, error: object_store::Error) -> StoreError {
        let error = anyhow::Error::new(error).context(what.to_owned());
        match self.backend.as_ref() {
            Backend::Azure { .. } => StoreError::Unavailable(error),
            Backend::Local(_) | Backend::Memory => StoreError::Io(error),
        }
    }

    async fn timed<T>(
        &self,
        what: &str,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        within_timeout(call).await.map_err(|e| self.failed(what, e))
    }

    /// Stores a new object with its content type and a one-year cache lifetime; fails with
    /// [`StoreError::AlreadyExists`] rather than overwrite (`If-None-Match: *` on Azure).
    #[tracing::instrument(name = "photos.put", skip_all, fields(key = %key, bytes = bytes.len()))]
    pub async fn put(&self, key: &PhotoKey, bytes: Bytes) -> Result<(), StoreError> {
        // A local file carries its type in its extension; LocalFileSystem refuses attributes.
        let attributes = match self.backend.as_ref() {
            Backend::Local(_) => Attributes::new(),
            _ => Attributes::from_iter([
                (Attribute::ContentType, key.content_type()),
                (Attribute::CacheControl, CACHE_CONTROL),
            ]),
        };
        let options = PutOptions {
            mode: PutMode::Create,
            attributes,
            ..Default::default()
        };
        let location = path(key);
        let put = self
            .objects
            .put_opts(&location, PutPayload::from(bytes), options);
        match self.timed("storing a photo", put).await {
            Err(StoreError::Io(e) | StoreError::Unavailable(e)) if is(&e, already_exists) => {
                Err(StoreError::AlreadyExists(key.to_string()))
            }
            other => other.map(drop),
        }
    }

    /// Reads an object; `Ok(None)` when there is none.
    #[tracing::instrument(name = "photos.get", skip_all, fields(key = %key))]
    pub async fn get(&self, key: &PhotoKey) -> Result<Option<StoredPhoto>, StoreError> {
        let fetch = async { self.objects.get(&path(key)).await?.bytes().await };
        match self.timed("reading a photo", fetch).await {
            Ok(bytes) => Ok(Some(StoredPhoto {
                bytes,
                content_type: key.content_type(),
            })),
            Err(StoreError::Io(e) | StoreError::Unavailable(e)) if is(&e, not_found) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Deletes an object; deleting a missing one is not an error.
    #[tracing::instrument(name = "photos.delete", skip_all, fields(key = %key))]
    pub async fn delete(&self, key: &PhotoKey) -> Result<(), StoreError> {
        match self
            .timed("deleting a photo", self.objects.delete(&path(key)))
            .await
        {
            Err(StoreError::Io(e) | StoreError::Unavailable(e)) if is(&e, not_found) => Ok(()),
            other => other,
        }
    }

    /// The URL a browser uses to fetch the object.
    pub async fn url(&self, key: &PhotoKey) -> Result<String, StoreError> {
        match self.links.as_ref() {
            Links::App => Ok(format!("{URL_PREFIX}{key}")),
            Links::Public { base } => Ok(format!("{base}/{key}")),
            Links::Sas(signer) => {
                let location = path(key);
                let sign = signer.signed_url(Method::GET, &location, SAS_LIFETIME);
                Ok(self.timed("signing a photo link", sign).await?.to_string())
            }
        }
    }

    /// Keeps both renditions of a processed photo, or neither.
    pub async fn save(&self, photo: &ProcessedPhoto) -> Result<(), StoreError> {
        let [display, thumbnail] = PhotoKey::both(&photo.name);
        let mut saved = self.put(&display, photo.display.clone()).await;
        if saved.is_ok() {
            saved = self.put(&thumbnail, photo.thumbnail.clone()).await;
        }
        if let Err(error) = saved {
            // Both, even the one whose put failed: a put that timed out may still have landed.
            self.remove(&photo.name).await;
            return Err(error);
        }
        Ok(())
    }

    /// Removes both renditions. Failures are not returned, because this runs on error paths
    /// where the original error is the one worth reporting; a delete that fails (storage is
    /// down, say) is retried in the background for a while, so that the outage which made a
    /// save fail does not leave an orphan once storage is back.
    pub async fn remove(&self, name: &PhotoName) {
        let mut failed = Vec::new();
        for key in PhotoKey::both(name) {
            if let Err(error) = self.delete(&key).await {
                tracing::warn!(photo = %name, error = %error_chain(&error), "could not delete a photo; retrying in the background");
                failed.push(key);
            }
        }
        if !failed.is_empty() {
            tokio::spawn(self.clone().retry_deletes(name.clone(), failed));
        }
    }

    async fn retry_deletes(self, name: PhotoName, mut keys: Vec<PhotoKey>) {
        let started = tokio::time::Instant::now();
        let mut pause = DELETE_RETRY_FIRST_PAUSE;
        while !keys.is_empty() {
            if started.elapsed() >= DELETE_RETRY_FOR {
                tracing::error!(photo = %name, "could not delete a photo for {} minutes; it is now an orphan", DELETE_RETRY_FOR.as_secs() / 60);
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(DELETE_RETRY_LONGEST_PAUSE);
            let mut still_failing = Vec::new();
            for key in keys {
                if self.delete(&key).await.is_err() {
                    still_failing.push(key);
                }
            }
            keys = still_failing;
        }
        tracing::info!(photo = %name, "deleted a photo left by a failed save");
    }

    /// Checked at startup: the store is reachable and writable, or the error says what to do.
    #[tracing::instrument(name = "photos.check", skip_all, fields(store = ?self))]
    pub async fn check(&self) -> Result<(), StoreError> {
        match self.backend.as_ref() {
            Backend::Memory => Ok(()),
            Backend::Local(dir) => check_directory(dir).await,
            Backend::Azure {
                endpoint,
                container,
            } => {
                let prefix = Path::from("thumbs");
                let list = self.objects.list_with_delimiter(Some(&prefix));
                within_timeout(list)
                    .await
                    .map(drop)
                    .map_err(|error| explain_check(&error, endpoint, container))
            }
        }
    }
}

#[cfg(test)]
impl PhotoStore {
    /// Every object's path, for tests that check nothing was left behind.
    pub(crate) async fn object_names(&self) -> Vec<String> {
        use futures_util::TryStreamExt;
        let objects: Vec<_> = self.objects.list(None).try_collect().await.unwrap();
        objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect()
    }
}

/// A storage call under the one storage timeout: no answer in time fails like any other error.
pub(crate) async fn within_timeout<T>(
    call: impl Future<Output = object_store::Result<T>>,
) -> object_store::Result<T> {
    match tokio::time::timeout(STORAGE_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(object_store::Error::Generic {
            store: "photos",
            source: format!("no answer within {} s", STORAGE_TIMEOUT.as_secs()).into(),
        }),
    }
}

fn path(key: &PhotoKey) -> Path {
    Path::from(key.to_string())
}

/// Whether an object_store error of that kind is behind `error`.
fn is(error: &anyhow::Error, kind: fn(&object_store::Error) -> bool) -> bool {
    error.chain().any(|e| e.downcast_ref().is_some_and(kind))
}

fn not_found(error: &object_store::Error) -> bool {
    matches!(error, object_store::Error::NotFound { .. })
}

fn already_exists(error: &object_store::Error) -> bool {
    matches!(error, object_store::Error::AlreadyExists { .. })
}

fn io(error: impl std::error::Error + Send + Sync + 'static, what: &str) -> StoreError {
    StoreError::Io(anyhow::Error::new(error).context(what.to_owned()))
}

/// The directory and its `thumbs/` exist and take a file now, not at the first upload.
async fn check_directory(dir: &std::path::Path) -> Result<(), StoreError> {
    let thumbs = dir.join("thumbs");
    tokio::fs::create_dir_all(&thumbs).await.map_err(|e| {
        io(
            e,
            &format!("creating the photo directory {}", thumbs.display()),
        )
    })?;
    let probe = dir.join(format!(".write-check-{}", uuid::Uuid::new_v4()));
    tokio::fs::write(&probe, b"ok").await.map_err(|e| {
        io(
            e,
            &format!("writing to the photo directory {}", dir.display()),
        )
    })?;
    let _ = tokio::fs::remove_file(&probe).await;
    Ok(())
}

/// The startup message for a container that cannot be used, saying what to do.
fn explain_check(error: &object_store::Error, endpoint: &str, container: &str) -> StoreError {
    let (failure, said) = blob::classify(error);
    let what = match failure {
        BlobFailure::ContainerNotFound => format!(
            "the container does not exist; create it (the tutorial names it \"photos\") ({said})"
        ),
        BlobFailure::AccessDenied => format!(
            "access denied; give the app's identity the \"Storage Blob Data Contributor\" role on the account ({said})"
        ),
        BlobFailure::TokenRefused => format!("the app's token was refused ({said})"),
        BlobFailure::Other => {
            format!(
                "cannot reach Blob Storage; check STORAGE_ACCOUNT_NAME and the network ({said})"
            )
        }
    };
    StoreError::Unavailable(anyhow::anyhow!(
        "Blob Storage container {container:?} at {endpoint}: {what}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photos::{PhotoFormat, Variant};

    async fn never_overwrites(store: PhotoStore) {
        store.check().await.unwrap();
        let name = PhotoName::generate(PhotoFormat::Png);
        let key = PhotoKey::new(&name, Variant::Thumbnail);
        store.put(&key, Bytes::from_static(b"first")).await.unwrap();
        let err = store
            .put(&key, Bytes::from_static(b"second"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
        let stored = store.get(&key).await.unwrap().unwrap();
        assert_eq!(&stored.bytes[..], b"first");
        assert_eq!(stored.content_type, "image/png");
        assert_eq!(
            store.url(&key).await.unwrap(),
            format!("/photos/thumbs/{name}")
        );
        store.delete(&key).await.unwrap();
        assert!(store.get(&key).await.unwrap().is_none());
        store.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn a_stored_photo_is_never_overwritten_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = PhotoStore::local(dir.path().join("photos")).unwrap();
        never_overwrites(store).await;
        assert!(dir.path().join("photos/thumbs").is_dir());
    }

    #[tokio::test]
    async fn a_stored_photo_is_never_overwritten_in_memory() {
        never_overwrites(PhotoStore::in_memory()).await;
    }
}
