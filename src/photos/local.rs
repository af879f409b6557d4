//! Photos as files in a local directory (the zero-setup default), served by the app at
//! `/photos/<key>`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{PhotoFormat, PhotoStore, StoreError, StoredPhoto};

/// The URL prefix under which the app serves local photos.
pub const URL_PREFIX: &str = "/photos/";

#[derive(Debug, Clone)]
pub struct LocalPhotoStore {
    dir: PathBuf,
}

impl LocalPhotoStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keys come from `Variant::key` of a validated `PhotoName` (`<uuid>.<ext>` or
    /// `thumbs/<uuid>.<ext>`); refuse anything else rather than trust the caller.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let name = key.strip_prefix("thumbs/").unwrap_or(key);
        if super::PhotoName::parse(name).is_none() {
            return Err(StoreError::Io(anyhow::anyhow!("invalid photo key {key:?}")));
        }
        Ok(self.dir.join(key))
    }
}

fn io_error(error: std::io::Error, what: &str) -> StoreError {
    StoreError::Io(anyhow::Error::new(error).context(what.to_owned()))
}

#[async_trait]
impl PhotoStore for LocalPhotoStore {
    #[tracing::instrument(name = "photos.local.put", skip(self, bytes, content_type), fields(bytes = bytes.len()))]
    async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &'static str,
    ) -> Result<(), StoreError> {
        let _ = content_type; // the extension carries the type for local files
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.dir).to_owned();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error(e, "creating the photo directory"))?;
        // Write to a temporary file, then hard-link it into place: the link fails if the name
        // exists (never overwrite) and readers never see a half-written photo.
        let temp = dir.join(format!(".upload-{}", uuid::Uuid::new_v4()));
        let result = async {
            let mut file = tokio::fs::File::create_new(&temp)
                .await
                .map_err(|e| io_error(e, "creating a temporary photo file"))?;
            file.write_all(&bytes)
                .await
                .map_err(|e| io_error(e, "writing a photo"))?;
            file.sync_all()
                .await
                .map_err(|e| io_error(e, "flushing a photo to disk"))?;
            match tokio::fs::hard_link(&temp, &path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    Err(StoreError::AlreadyExists(key.to_owned()))
                }
                Err(e) => Err(io_error(e, "moving a photo into place")),
            }
        }
        .await;
        let _ = tokio::fs::remove_file(&temp).await;
        result
    }

    #[tracing::instrument(name = "photos.local.get", skip(self))]
    async fn get(&self, key: &str) -> Result<Option<StoredPhoto>, StoreError> {
        let path = self.path(key)?;
        let format = key
            .rsplit('.')
            .next()
            .and_then(PhotoFormat::from_extension)
            .ok_or_else(|| {
                StoreError::Io(anyhow::anyhow!("photo key without a known extension"))
            })?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(StoredPhoto {
                bytes: Bytes::from(bytes),
                content_type: format.content_type(),
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e, "reading a photo")),
        }
    }

    #[tracing::instrument(name = "photos.local.delete", skip(self))]
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(e, "deleting a photo")),
        }
    }

    async fn url(&self, key: &str) -> Result<String, StoreError> {
        Ok(format!("{URL_PREFIX}{key}"))
    }

    #[tracing::instrument(name = "photos.local.check", skip(self), fields(dir = %self.dir.display()))]
    async fn check(&self) -> Result<(), StoreError> {
        let thumbs = self.dir.join("thumbs");
        tokio::fs::create_dir_all(&thumbs).await.map_err(|e| {
            io_error(
                e,
                &format!("creating the photo directory {}", thumbs.display()),
            )
        })?;
        // Prove the directory is writable now rather than on the first upload.
        let probe = self
            .dir
            .join(format!(".write-check-{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&probe, b"ok").await.map_err(|e| {
            io_error(
                e,
                &format!("writing to the photo directory {}", self.dir.display()),
            )
        })?;
        let _ = tokio::fs::remove_file(&probe).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photos::{PhotoName, Variant};

    #[tokio::test]
    async fn a_stored_photo_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalPhotoStore::new(dir.path());
        store.check().await.unwrap();
        let name = PhotoName::generate(PhotoFormat::Png);
        let key = Variant::Thumbnail.key(&name);
        store
            .put(&key, Bytes::from_static(b"first"), "image/png")
            .await
            .unwrap();
        let err = store
            .put(&key, Bytes::from_static(b"second"), "image/png")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)));
        let stored = store.get(&key).await.unwrap().unwrap();
        assert_eq!(&stored.bytes[..], b"first");
        assert_eq!(stored.content_type, "image/png");
        store.delete(&key).await.unwrap();
        assert!(store.get(&key).await.unwrap().is_none());
        store.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn keys_that_are_not_photo_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalPhotoStore::new(dir.path());
        assert!(store.get("../secret.jpg").await.is_err());
        assert!(store.put("x.png", Bytes::new(), "image/png").await.is_err());
    }
}
