//! Review photos: validation and re-encoding ([`processing`]) and where they are kept
//! ([`store::PhotoStore`]: one seam over object_store, with a local directory, Azure Blob
//! Storage or memory behind it).

pub mod azure;
mod jpeg;
pub mod processing;
pub mod store;
mod workers;

use std::fmt;

pub use processing::{ImageWorkers, PhotoError, PhotoFormat, PhotoLimits, ProcessedPhoto};
pub use store::{PhotoStore, StoreError, StoredPhoto};

/// The URL prefix under which the app itself serves photos (local directory, `proxy` mode).
pub const URL_PREFIX: &str = "/photos/";

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

/// Where one rendition of one photo is kept: thumbnails live under `thumbs/` with the same
/// name. The only way to name an object in a [`PhotoStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoKey {
    pub name: PhotoName,
    pub variant: Variant,
}

const THUMBNAIL_DIR: &str = "thumbs/";

impl PhotoKey {
    pub fn new(name: &PhotoName, variant: Variant) -> Self {
        Self {
            name: name.clone(),
            variant,
        }
    }

    /// Both renditions of a photo.
    pub fn both(name: &PhotoName) -> [Self; 2] {
        [
            Self::new(name, Variant::Display),
            Self::new(name, Variant::Thumbnail),
        ]
    }

    /// The key as it appears in object paths and photo URLs: `<name>` or `thumbs/<name>`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (variant, name) = match raw.strip_prefix(THUMBNAIL_DIR) {
            Some(name) => (Variant::Thumbnail, name),
            None => (Variant::Display, raw),
        };
        Some(Self {
            name: PhotoName::parse(name)?,
            variant,
        })
    }

    pub fn content_type(&self) -> &'static str {
        self.name.format().content_type()
    }
}

impl fmt::Display for PhotoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variant {
            Variant::Display => write!(f, "{}", self.name),
            Variant::Thumbnail => write!(f, "{THUMBNAIL_DIR}{}", self.name),
        }
    }
}

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

    #[test]
    fn keys_round_trip_through_their_text_and_refuse_anything_else() {
        let name = PhotoName::generate(PhotoFormat::Webp);
        for key in PhotoKey::both(&name) {
            assert_eq!(PhotoKey::parse(&key.to_string()), Some(key.clone()));
        }
        assert_eq!(
            PhotoKey::new(&name, Variant::Thumbnail).to_string(),
            format!("thumbs/{name}")
        );
        for bad in [
            "thumbs/../x.jpg",
            "thumbs/thumbs/x",
            "other/x.jpg",
            "thumbs/",
        ] {
            assert!(PhotoKey::parse(bad).is_none(), "{bad:?}");
        }
    }
}
