//! Turns an upload into a safe photo: the type is detected from the bytes (JPEG, PNG or WebP
//! only), decoding runs under explicit pixel and allocation limits, EXIF orientation is applied
//! and then every piece of metadata (EXIF, GPS, ICC, comments) is dropped by re-encoding the
//! pixels into a display-size image and a thumbnail.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::error::LimitErrorKind;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use tokio::sync::Semaphore;

use super::PhotoName;

/// Long edge of the stored display image; phone photos (4000+ px) are scaled down to this.
pub const DISPLAY_EDGE: u32 = 1600;
/// Long edge of the stored thumbnail (shown small, sharp on high-density screens).
pub const THUMBNAIL_EDGE: u32 = 320;
const JPEG_QUALITY: u8 = 85;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoFormat {
    Jpeg,
    Png,
    Webp,
}

impl PhotoFormat {
    pub fn extension(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "jpg",
            PhotoFormat::Png => "png",
            PhotoFormat::Webp => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "image/jpeg",
            PhotoFormat::Png => "image/png",
            PhotoFormat::Webp => "image/webp",
        }
    }

    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "jpg" => Some(PhotoFormat::Jpeg),
            "png" => Some(PhotoFormat::Png),
            "webp" => Some(PhotoFormat::Webp),
            _ => None,
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            PhotoFormat::Jpeg => ImageFormat::Jpeg,
            PhotoFormat::Png => ImageFormat::Png,
            PhotoFormat::Webp => ImageFormat::WebP,
        }
    }

    /// The type from the first bytes, whatever the file name or declared type says.
    pub fn detect(bytes: &[u8]) -> Result<Self, PhotoError> {
        match image::guess_format(bytes) {
            Ok(ImageFormat::Jpeg) => Ok(PhotoFormat::Jpeg),
            Ok(ImageFormat::Png) => Ok(PhotoFormat::Png),
            Ok(ImageFormat::WebP) => Ok(PhotoFormat::Webp),
            Ok(other) => Err(PhotoError::UnsupportedType(
                other
                    .extensions_str()
                    .first()
                    .unwrap_or(&"unknown")
                    .to_uppercase(),
            )),
            Err(_) => Err(PhotoError::NotAnImage),
        }
    }
}

/// Limits applied to every upload.
#[derive(Debug, Clone)]
pub struct PhotoLimits {
    pub max_bytes: u64,
    /// Widest or tallest accepted image, in pixels.
    pub max_dimension: u32,
    /// Most pixels accepted (width × height): 50 MP covers phone cameras.
    pub max_pixels: u64,
    /// Most memory the decoder may allocate.
    pub max_alloc: u64,
}

impl PhotoLimits {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_dimension: 12_000,
            max_pixels: 50_000_000,
            max_alloc: 512 * 1024 * 1024,
        }
    }

    fn too_many_pixels(&self) -> PhotoError {
        PhotoError::TooManyPixels {
            max_megapixels: self.max_pixels / 1_000_000,
            max_dimension: self.max_dimension,
        }
    }
}

/// Why an upload was refused. Every variant is the user's problem (a 4xx), except `Internal`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhotoError {
    #[error("The photo is too big: the limit is {}.", human_bytes(*max_bytes))]
    TooLarge { max_bytes: u64 },
    #[error("That file is not a photo. Choose a JPEG, PNG or WebP image.")]
    NotAnImage,
    #[error("{0} images are not accepted. Choose a JPEG, PNG or WebP image.")]
    UnsupportedType(String),
    #[error("The photo could not be read; it may be damaged or incomplete.")]
    Unreadable,
    #[error(
        "The photo has too many pixels: the limit is {max_megapixels} megapixels and {max_dimension} pixels per side."
    )]
    TooManyPixels {
        max_megapixels: u64,
        max_dimension: u32,
    },
    #[error("The photo could not be processed.")]
    Internal,
}

pub fn human_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{} KiB", bytes.div_ceil(1024))
    }
}

/// A photo ready to store: both renditions share the name and format.
#[derive(Debug, Clone)]
pub struct ProcessedPhoto {
    pub name: PhotoName,
    pub display: Bytes,
    pub thumbnail: Bytes,
    pub width: u32,
    pub height: u32,
}

/// Validates, orients, strips and re-encodes one upload. CPU-heavy: call it through
/// [`ImageWorkers`], not on an async thread.
pub fn process(bytes: &[u8], limits: &PhotoLimits) -> Result<ProcessedPhoto, PhotoError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(PhotoError::TooLarge {
            max_bytes: limits.max_bytes,
        });
    }
    let format = PhotoFormat::detect(bytes)?;

    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_dimension);
    decoder_limits.max_image_height = Some(limits.max_dimension);
    decoder_limits.max_alloc = Some(limits.max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(decoder_limits);

    // The header is read first: the dimension check happens before any pixel buffer exists,
    // so a decompression bomb costs a few bytes of header parsing.
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, limits))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(PhotoError::Unreadable);
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(limits.too_many_pixels());
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, limits))?;
    if format == PhotoFormat::Jpeg && !has_end_of_image_marker(bytes) {
        // The JPEG decoder pads a cut-off file with grey instead of failing; a photo whose
        // bottom half is missing is not worth keeping.
        return Err(PhotoError::Unreadable);
    }
    image.apply_orientation(orientation);

    let display = fit_within(image, DISPLAY_EDGE);
    let thumbnail = display.thumbnail(THUMBNAIL_EDGE, THUMBNAIL_EDGE);
    Ok(ProcessedPhoto {
        name: PhotoName::generate(format),
        width: display.width(),
        height: display.height(),
        display: encode(&display, format)?,
        thumbnail: encode(&thumbnail, format)?,
    })
}

fn fit_within(image: DynamicImage, edge: u32) -> DynamicImage {
    if image.width() <= edge && image.height() <= edge {
        image
    } else {
        image.resize(edge, edge, FilterType::Triangle)
    }
}

/// A complete JPEG ends with the EOI marker (FF D9); phones sometimes append data after it,
/// so look for it in the tail rather than only at the very end.
fn has_end_of_image_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64 * 1024)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn classify(error: ImageError, limits: &PhotoLimits) -> PhotoError {
    match error {
        ImageError::Limits(limit) => match limit.kind() {
            LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory => {
                limits.too_many_pixels()
            }
            _ => PhotoError::Unreadable,
        },
        ImageError::Unsupported(_) => PhotoError::Unreadable,
        ImageError::Decoding(_) | ImageError::IoError(_) | ImageError::Parameter(_) => {
            PhotoError::Unreadable
        }
        ImageError::Encoding(_) => PhotoError::Internal,
    }
}

fn encode(image: &DynamicImage, format: PhotoFormat) -> Result<Bytes, PhotoError> {
    let mut out = Vec::new();
    let result = match format {
        PhotoFormat::Jpeg => {
            // JPEG has no alpha channel; flatten to RGB.
            let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
            rgb.write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))
        }
        PhotoFormat::Png => image.write_with_encoder(PngEncoder::new(&mut out)),
        PhotoFormat::Webp => {
            // The WebP encoder takes 8-bit RGB(A) only.
            let eight_bit = if image.color().has_alpha() {
                DynamicImage::ImageRgba8(image.to_rgba8())
            } else {
                DynamicImage::ImageRgb8(image.to_rgb8())
            };
            eight_bit.write_with_encoder(WebPEncoder::new_lossless(&mut out))
        }
    };
    result.map_err(|error| {
        tracing::error!(error = %error, "re-encoding a photo failed");
        PhotoError::Internal
    })?;
    Ok(Bytes::from(out))
}

/// Runs photo processing on blocking threads, a few at a time, so uploads neither stall the
/// async workers nor use unbounded CPU and memory.
#[derive(Debug, Clone)]
pub struct ImageWorkers {
    permits: Arc<Semaphore>,
}

impl ImageWorkers {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    #[tracing::instrument(name = "photo.process", skip_all, fields(bytes = bytes.len()))]
    pub async fn process(
        &self,
        bytes: Bytes,
        limits: PhotoLimits,
    ) -> Result<ProcessedPhoto, PhotoError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PhotoError::Internal)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            process(&bytes, &limits)
        })
        .await
        .unwrap_or_else(|join_error| {
            tracing::error!(error = %join_error, "photo processing panicked");
            Err(PhotoError::Internal)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 90))
            .unwrap();
        out
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(width, height, Rgb([10, 20, 30]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_with_encoder(PngEncoder::new(&mut out))
            .unwrap();
        out
    }

    #[test]
    fn a_large_jpeg_is_scaled_to_display_size_with_a_thumbnail() {
        let photo = process(&jpeg(2000, 1000), &PhotoLimits::new(8 << 20)).unwrap();
        assert_eq!((photo.width, photo.height), (1600, 800));
        assert!(photo.name.as_str().ends_with(".jpg"));
        let thumb = image::load_from_memory(&photo.thumbnail).unwrap();
        assert_eq!(thumb.width(), THUMBNAIL_EDGE);
    }

    #[test]
    fn text_svg_and_html_are_not_images() {
        for bytes in [
            &b"just some text"[..],
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
            b"<html><script>alert(1)</script></html>",
            b"",
        ] {
            assert_eq!(
                process(bytes, &PhotoLimits::new(1 << 20)).unwrap_err(),
                PhotoError::NotAnImage
            );
        }
    }

    #[test]
    fn gif_is_an_unsupported_type() {
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        assert!(matches!(
            process(gif, &PhotoLimits::new(1 << 20)).unwrap_err(),
            PhotoError::UnsupportedType(_)
        ));
    }

    #[test]
    fn truncated_jpeg_and_png_are_unreadable() {
        let full = jpeg(400, 300);
        assert_eq!(
            process(&full[..full.len() / 2], &PhotoLimits::new(1 << 20)).unwrap_err(),
            PhotoError::Unreadable
        );
        let full = png(400, 300);
        assert_eq!(
            process(&full[..full.len() / 2], &PhotoLimits::new(1 << 20)).unwrap_err(),
            PhotoError::Unreadable
        );
    }

    /// A tiny PNG whose header claims `width` × `height`: what a decompression bomb looks like
    /// to a decoder before it allocates.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = png(8, 8);
        // IHDR data starts at byte 16 (8-byte signature, 4-byte length, 4-byte type).
        bytes[16..20].copy_from_slice(&width.to_be_bytes());
        bytes[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        let err = process(&png_claiming(20_000, 20_000), &PhotoLimits::new(8 << 20)).unwrap_err();
        assert!(matches!(err, PhotoError::TooManyPixels { .. }), "{err:?}");
        let err = process(&png_claiming(10_000, 10_000), &PhotoLimits::new(8 << 20)).unwrap_err();
        assert!(
            matches!(
                err,
                PhotoError::TooManyPixels {
                    max_megapixels: 50,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn oversized_uploads_are_refused_before_decoding() {
        let bytes = jpeg(100, 100);
        let err = process(&bytes, &PhotoLimits::new(100)).unwrap_err();
        assert_eq!(err, PhotoError::TooLarge { max_bytes: 100 });
    }

    #[test]
    fn human_sizes_read_well() {
        assert_eq!(human_bytes(8 << 20), "8 MiB");
        assert_eq!(human_bytes(2_048_000), "2.0 MiB");
        assert_eq!(human_bytes(2048), "2 KiB");
    }
}
