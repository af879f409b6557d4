//! Review photos: validation and re-encoding ([`processing`]) and where they are kept
//! ([`PhotoStore`], one narrow seam with a backend per storage service).

pub mod azure;
pub mod local;
pub mod processing;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error_chain;

pub use processing::{ImageWorkers, PhotoError, PhotoFormat, PhotoLimits, ProcessedPhoto};

/// A stored photo's server-generated name: `<uuid>.<ext>`, with the extension of the detected
/// type. Anything else (path separators, `..`, other extensions) cannot be a `PhotoName`, so
/// names taken from URLs or the database can be passed to a store safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhotoName(String);

impl PhotoName {
    pub fn generate(format: PhotoFormat) -> Self {
        Self(format!("{}.{}", uuid::Uuid::new_v4(), format.extension()))
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (stem, ext) = raw.split_once('.')?;
        let uuid = uuid::Uuid::try_parse(stem).ok()?;
        // Only the canonical lowercase hyphenated form, so one photo has exactly one name.
        if uuid.hyphenated().to_string() != stem {
            return None;
        }
        PhotoFormat::from_extension(ext)?;
        Some(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn format(&self) -> PhotoFormat {
        let ext = self.0.rsplit('.').next().unwrap_or_default();
        PhotoFormat::from_extension(ext).expect("a PhotoName always has a known extension")
    }
}

impl fmt::Display for PhotoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which rendition of a photo: the display-size image or its thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Display,
    Thumbnail,
}

impl Variant {
    /// The object key for this rendition; thumbnails live under `thumbs/` with the same name.
    pub fn key(self, name: &PhotoName) -> String {
        match self {
            Variant::Display => name.as_str().to_owned(),
            Variant::Thumbnail => format!("thumbs/{name}"),
        }
    }
}

/// A photo read back from a store.
#[derive(Debug, Clone)]
pub struct StoredPhoto {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a photo named {0} already exists")]
    AlreadyExists(String),
    #[error("photo storage is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("photo storage failed")]
    Io(#[source] anyhow::Error),
}

/// Where photos are kept. Implementations never overwrite an existing object.
#[async_trait]
pub trait PhotoStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new object; fails with [`StoreError::AlreadyExists`] rather than overwrite.
    async fn put(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &'static str,
    ) -> Result<(), StoreError>;

    /// Reads an object; `Ok(None)` when there is none.
    async fn get(&self, key: &str) -> Result<Option<StoredPhoto>, StoreError>;

    /// Deletes an object; deleting a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// The URL a browser uses to fetch the object.
    async fn url(&self, key: &str) -> Result<String, StoreError>;

    /// Checked at startup: the store is reachable and writable.
    async fn check(&self) -> Result<(), StoreError>;
}

/// Keeps both renditions of a processed photo, or neither.
pub async fn save_photo(store: &dyn PhotoStore, photo: &ProcessedPhoto) -> Result<(), StoreError> {
    let content_type = photo.name.format().content_type();
    store
        .put(
            &Variant::Display.key(&photo.name),
            photo.display.clone(),
            content_type,
        )
        .await?;
    if let Err(error) = store
        .put(
            &Variant::Thumbnail.key(&photo.name),
            photo.thumbnail.clone(),
            content_type,
        )
        .await
    {
        delete_photo(store, &photo.name).await;
        return Err(error);
    }
    Ok(())
}

/// Removes both renditions; failures are logged, not returned, because this runs on error paths
/// where the original error is the one worth reporting.
pub async fn delete_photo(store: &dyn PhotoStore, name: &PhotoName) {
    for variant in [Variant::Display, Variant::Thumbnail] {
        if let Err(error) = store.delete(&variant.key(name)).await {
            tracing::error!(photo = %name, error = %error_chain(&error), "could not delete a photo; it is now an orphan");
        }
    }
}

pub type SharedPhotoStore = Arc<dyn PhotoStore>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photo_names_are_only_generated_uuids_with_known_extensions() {
        let name = PhotoName::generate(PhotoFormat::Jpeg);
        assert!(name.as_str().ends_with(".jpg"));
        assert_eq!(PhotoName::parse(name.as_str()), Some(name.clone()));
        for bad in [
            "../etc/passwd",
            "x.jpg",
            "6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b.svg",
            "6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b.jpg/../../x",
            "6F1C1D2E-4E0B-4F55-9D3B-0B2F1C3E4A5B.jpg",
            "6f1c1d2e4e0b4f559d3b0b2f1c3e4a5b.jpg",
            "",
        ] {
            assert!(PhotoName::parse(bad).is_none(), "{bad:?}");
        }
    }
}
