//! Turns an upload into a safe photo: the type is detected from the bytes (JPEG, PNG or WebP
//! only), decoding runs under explicit pixel and allocation limits, EXIF orientation is applied
//! and then every piece of metadata (EXIF, GPS, ICC, comments) is dropped by re-encoding the
//! pixels into a display-size image and a thumbnail.
//!
//! Memory follows the pixels, not the upload's size (a 160 KB PNG can decode to 150 MB), so
//! what a photo will need is worked out from its header first ([`inspect`]) and
//! [`ImageWorkers`] lets photos decode only while their sum stays within one shared budget.

use std::io::Cursor;

use bytes::Bytes;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::error::{EncodingError, LimitError, LimitErrorKind};
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::PhotoName;
use super::jpeg;
pub use super::workers::ImageWorkers;
use crate::config::DEFAULT_PHOTO_MEMORY_LIMIT;

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
    /// Most memory one photo may need while it is processed; also the budget all photos in
    /// flight share (see [`ImageWorkers`]).
    pub max_memory: u64,
}

impl PhotoLimits {
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_dimension: 12_000,
            max_pixels: 50_000_000,
            max_memory: DEFAULT_PHOTO_MEMORY_LIMIT,
        }
    }

    pub fn with_max_memory(self, max_memory: u64) -> Self {
        Self { max_memory, ..self }
    }

    fn too_many_pixels(&self) -> PhotoError {
        self.too_many_pixels_for(self.max_pixels)
    }

    fn too_many_pixels_for(&self, max_pixels: u64) -> PhotoError {
        PhotoError::TooManyPixels {
            max_megapixels: max_pixels / 1_000_000,
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
    #[error(
        "Many photos are being processed right now, so yours could not be. Please try again in a minute."
    )]
    Busy,
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

/// What processing one upload will take, read from its header before any pixel exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeCost {
    pub format: PhotoFormat,
    pub width: u32,
    pub height: u32,
    /// The size its pixels are decoded at: smaller than the photo for a large JPEG.
    pub decoded: (u32, u32),
    /// Peak bytes held while it is decoded, resized and re-encoded.
    pub memory: u64,
}

/// Checks the upload's size, type and header, and works out what decoding it will need. Cheap
/// (no pixels are decoded) so a decompression bomb costs a few bytes of header parsing.
pub fn inspect(bytes: &[u8], limits: &PhotoLimits) -> Result<DecodeCost, PhotoError> {
    inspect_as(bytes, limits, true)
}

/// [`inspect`], for a decode at full size unless `reduce` lets a large JPEG be reduced.
pub(super) fn inspect_as(
    bytes: &[u8],
    limits: &PhotoLimits,
    reduce: bool,
) -> Result<DecodeCost, PhotoError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(PhotoError::TooLarge {
            max_bytes: limits.max_bytes,
        });
    }
    let format = PhotoFormat::detect(bytes)?;
    if format == PhotoFormat::Jpeg && !jpeg::has_end_of_image_marker(bytes) {
        // The JPEG decoder pads a cut-off file with grey instead of failing; a photo whose
        // bottom half is missing is not worth keeping.
        return Err(PhotoError::Unreadable);
    }
    let decoder = header_decoder(bytes, format, limits)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(PhotoError::Unreadable);
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(limits.too_many_pixels());
    }
    let color = decoder.color_type();
    let beside = beside_bytes_per_pixel(format, color, bytes);
    let reduced = reduced_jpeg(bytes, format, width, height).filter(|_| reduce);
    let memory = match reduced {
        Some(reduced) => reduced_peak_memory(width, height, reduced, beside),
        None => peak_memory(width, height, color, beside),
    } + bytes.len() as u64;
    if memory > limits.max_memory {
        // The most pixels of this kind (same shape, same colours) that would fit.
        let fraction = limits.max_memory as f64 / memory as f64;
        let affordable = (pixels as f64 * fraction) as u64;
        return Err(limits.too_many_pixels_for(affordable.min(limits.max_pixels)));
    }
    Ok(DecodeCost {
        format,
        width,
        height,
        decoded: reduced.map_or((width, height), |r| (r.width, r.height)),
        memory,
    })
}

fn reduced_jpeg(
    bytes: &[u8],
    format: PhotoFormat,
    width: u32,
    height: u32,
) -> Option<jpeg::Reduced> {
    (format == PhotoFormat::Jpeg)
        .then(|| jpeg::reduced_size(bytes, width, height, DISPLAY_EDGE))
        .flatten()
}

fn header_decoder<'a>(
    bytes: &'a [u8],
    format: PhotoFormat,
    limits: &PhotoLimits,
) -> Result<impl ImageDecoder + 'a, PhotoError> {
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_dimension);
    decoder_limits.max_image_height = Some(limits.max_dimension);
    decoder_limits.max_alloc = Some(limits.max_memory);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(decoder_limits);
    reader.into_decoder().map_err(|e| classify(e, limits))
}

/// Bytes per pixel a decoder holds beside the decoded pixels while it decodes: a progressive
/// JPEG keeps every DCT coefficient (2 bytes per component); WebP decodes into its own frame.
fn beside_bytes_per_pixel(format: PhotoFormat, color: image::ColorType, bytes: &[u8]) -> u64 {
    match format {
        PhotoFormat::Jpeg if jpeg::is_progressive(bytes) => 2 * u64::from(color.channel_count()),
        PhotoFormat::Jpeg | PhotoFormat::Png => 0,
        PhotoFormat::Webp => 4,
    }
}

/// The most bytes held at once while one photo is processed, input aside: while decoding, the
/// pixels and what the decoder keeps beside them; while scaling, the pixels, the triangle
/// filter's intermediate (source width × target height, 16 bytes a pixel) if it is used, and
/// the display image; after that (the full-size pixels are gone), the display image, its
/// oriented and 8-bit copies and the thumbnail.
fn peak_memory(width: u32, height: u32, color: image::ColorType, beside_per_pixel: u64) -> u64 {
    let bpp = u64::from(color.bytes_per_pixel());
    let (w, h) = (u64::from(width), u64::from(height));
    let pixels = w * h;
    let (dw, dh) = fit_dimensions(width, height, DISPLAY_EDGE);
    let display = u64::from(dw) * u64::from(dh) * bpp.max(3);
    let decoding = pixels * (bpp + beside_per_pixel);
    let intermediate =
        if (u64::from(dw), u64::from(dh)) == (w, h) || averages_area(width, height, DISPLAY_EDGE) {
            0
        } else {
            w * u64::from(dh) * 16
        };
    let scaling = pixels * bpp + intermediate + display;
    decoding.max(scaling).max(finishing(display, bpp))
}

/// The display image, its oriented and 8-bit copies, and the thumbnail.
fn finishing(display: u64, bpp: u64) -> u64 {
    3 * display + u64::from(THUMBNAIL_EDGE).pow(2) * bpp
}

/// [`peak_memory`] for a JPEG decoded at a reduced size: while decoding, what a progressive
/// JPEG keeps per full-size pixel, the reduced component planes and their interleaved pixels
/// (block padding allowed for); while scaling, the reduced pixels and the display-wide pass,
/// then that pass and the display image.
fn reduced_peak_memory(width: u32, height: u32, reduced: jpeg::Reduced, beside: u64) -> u64 {
    let bpp = u64::from(reduced.color.bytes_per_pixel());
    let (rw, rh) = (u64::from(reduced.width), u64::from(reduced.height));
    let (dw, dh) = fit_dimensions(width, height, DISPLAY_EDGE);
    let (dw, dh) = (u64::from(dw), u64::from(dh));
    let display = dw * dh * bpp.max(3);
    let decoding = u64::from(width) * u64::from(height) * beside + (rw + 16) * (rh + 16) * 2 * bpp;
    let scaling = (rw * rh * bpp).max(dw * dh * bpp) + dw * rh * bpp;
    decoding.max(scaling).max(finishing(display, bpp))
}

/// Validates, orients, strips and re-encodes one upload. CPU-heavy: call it through
/// [`ImageWorkers`], not on an async thread.
pub fn process(bytes: &[u8], limits: &PhotoLimits) -> Result<ProcessedPhoto, PhotoError> {
    let cost = inspect(bytes, limits)?;
    match process_as(bytes, limits, &cost)? {
        Some(photo) => Ok(photo),
        None => process_as(bytes, limits, &inspect_as(bytes, limits, false)?)?
            .ok_or(PhotoError::Internal),
    }
}

/// [`process`] without the reduced JPEG decode: the fallback, and the path before it, kept
/// callable for `bench/photos.rs`.
#[doc(hidden)]
pub fn process_at_full_size(
    bytes: &[u8],
    limits: &PhotoLimits,
) -> Result<ProcessedPhoto, PhotoError> {
    process_as(bytes, limits, &inspect_as(bytes, limits, false)?)?.ok_or(PhotoError::Internal)
}

/// [`process`] as `cost` planned it; None when a JPEG's reduced decode failed, so that it is
/// decoded at full size instead (image's decoder reads some damaged files jpeg-decoder does
/// not), once memory for that is found.
pub(super) fn process_as(
    bytes: &[u8],
    limits: &PhotoLimits,
    cost: &DecodeCost,
) -> Result<Option<ProcessedPhoto>, PhotoError> {
    let reduced = match reduced_jpeg(bytes, cost.format, cost.width, cost.height) {
        Some(reduced) if (reduced.width, reduced.height) == cost.decoded => Some(reduced),
        _ => None,
    };
    // Scaled first, then turned: rotating the small image, not the full-size one, saves a copy
    // of every decoded pixel. (Fitting within a square gives the same size either way.)
    let display = if let Some(reduced) = reduced {
        match jpeg::decode_reduced(bytes, reduced, DISPLAY_EDGE, limits.max_memory) {
            Ok((image, orientation)) => {
                // The photo's own size, so the display is the size a full decode would give.
                let (width, height) = fit_dimensions(cost.width, cost.height, DISPLAY_EDGE);
                let mut display =
                    jpeg::resize_reduced(image, width, height).ok_or(PhotoError::Internal)?;
                display.apply_orientation(orientation);
                display
            }
            Err(error) => {
                tracing::info!(%error, "a JPEG's reduced decode failed: decoding it at full size");
                return Ok(None);
            }
        }
    } else {
        let mut decoder = header_decoder(bytes, cost.format, limits)?;
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let image = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, limits))?;
        let mut display = fit_within(image, DISPLAY_EDGE);
        display.apply_orientation(orientation);
        display
    };
    let thumbnail = fit_within(display.clone(), THUMBNAIL_EDGE);
    Ok(Some(ProcessedPhoto {
        name: PhotoName::generate(cost.format),
        width: display.width(),
        height: display.height(),
        display: encode(&display, cost.format)?,
        thumbnail: encode(&thumbnail, cost.format)?,
    }))
}

/// The size of `width` × `height` scaled down (never up) to fit within `edge` × `edge`.
fn fit_dimensions(width: u32, height: u32, edge: u32) -> (u32, u32) {
    if width <= edge && height <= edge {
        return (width, height);
    }
    let scale = f64::from(edge) / f64::from(width.max(height));
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, edge);
    (scaled(width), scaled(height))
}

/// Scales down. From twice the size or more, by averaging each target pixel's source area: no
/// buffer beyond the result, and fast. Closer than that, with a triangle filter, whose one-pass
/// intermediate (4 float channels) is then small. DynamicImage's own methods are used rather
/// than imageops' generic functions so that the work runs in the image crate's optimised code,
/// even in a debug build.
fn fit_within(image: DynamicImage, edge: u32) -> DynamicImage {
    let (width, height) = fit_dimensions(image.width(), image.height(), edge);
    if (width, height) == (image.width(), image.height()) {
        image
    } else if averages_area(image.width(), image.height(), edge) {
        image.thumbnail_exact(width, height)
    } else {
        image.resize_exact(width, height, FilterType::Triangle)
    }
}

fn averages_area(width: u32, height: u32, edge: u32) -> bool {
    width.max(height) >= 2 * edge
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

/// JPEG has no alpha channel: flattened to RGB, then encoded by jpeg-encoder (see Cargo.toml).
/// Its errors come back as image's, so that [`encode`] reports every format's failure alike.
fn encode_jpeg(image: &DynamicImage, out: &mut Vec<u8>) -> Result<(), ImageError> {
    let rgb = image.to_rgb8();
    // Both sides are at most DISPLAY_EDGE; jpeg-encoder takes u16.
    let (Ok(width), Ok(height)) = (u16::try_from(rgb.width()), u16::try_from(rgb.height())) else {
        return Err(ImageError::Limits(LimitError::from_kind(
            LimitErrorKind::DimensionError,
        )));
    };
    jpeg_encoder::Encoder::new(out, JPEG_QUALITY)
        .encode(rgb.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|error| ImageError::Encoding(EncodingError::new(ImageFormat::Jpeg.into(), error)))
}

fn encode(image: &DynamicImage, format: PhotoFormat) -> Result<Bytes, PhotoError> {
    let mut out = Vec::new();
    let result = match format {
        PhotoFormat::Jpeg => encode_jpeg(image, &mut out),
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

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{Rgb, RgbImage};
    use std::time::Duration;

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
    fn a_photo_needing_more_than_the_memory_limit_is_refused_naming_what_would_fit() {
        let limits = PhotoLimits::new(8 << 20).with_max_memory(64 << 20);
        // 7000 × 7000 RGB: 147 MB of pixels alone.
        let err = inspect(&png_claiming(7000, 7000), &limits).unwrap_err();
        let PhotoError::TooManyPixels { max_megapixels, .. } = err else {
            panic!("{err:?}")
        };
        assert!((10..=22).contains(&max_megapixels), "{max_megapixels}");
        // The same image within the default limit is fine.
        let cost = inspect(&png_claiming(7000, 7000), &PhotoLimits::new(8 << 20)).unwrap();
        assert!(
            cost.memory > 147_000_000 && cost.memory < 192 << 20,
            "{cost:?}"
        );
    }

    #[test]
    fn scaling_down_far_needs_no_buffer_beyond_the_result() {
        let color = image::ColorType::Rgb8;
        let phone = peak_memory(4000, 3000, color, 0);
        assert!(phone < 4000 * 3000 * 3 + (10 << 20), "{phone}");
        // Just over the display size, the triangle filter's intermediate is counted.
        let near = peak_memory(2000, 1500, color, 0);
        assert!(near >= 2000 * 1500 * 3 + 2000 * 1200 * 16, "{near}");
        // A progressive JPEG keeps its coefficients while it decodes.
        assert!(peak_memory(4000, 3000, color, 6) >= 4000 * 3000 * 9);
    }

    #[tokio::test]
    async fn while_the_memory_budget_is_taken_a_photo_waits_then_is_turned_away_as_busy() {
        let workers = ImageWorkers::new(2, 64 << 20).with_memory_wait(Duration::from_millis(200));
        let held = workers.hold_all_memory();
        let limits = PhotoLimits::new(8 << 20).with_max_memory(64 << 20);
        let bytes = Bytes::from(jpeg(800, 600));
        assert_eq!(
            workers
                .process(bytes.clone(), limits.clone())
                .await
                .unwrap_err(),
            PhotoError::Busy
        );
        drop(held);
        let photo = workers.process(bytes, limits).await.unwrap();
        assert_eq!((photo.width, photo.height), (800, 600));
    }

    #[test]
    fn a_rotated_phone_photo_is_turned_upright_after_scaling() {
        // Orientation 6 (rotate 90° clockwise): a landscape-encoded sensor image shown portrait.
        let mut decoded = DynamicImage::ImageRgb8(image::RgbImage::new(4000, 3000));
        decoded = fit_within(decoded, DISPLAY_EDGE);
        decoded.apply_orientation(Orientation::Rotate90);
        assert_eq!((decoded.width(), decoded.height()), (1200, 1600));
    }

    #[test]
    fn oversized_uploads_are_refused_before_decoding() {
        let bytes = jpeg(100, 100);
        let err = process(&bytes, &PhotoLimits::new(100)).unwrap_err();
        assert_eq!(err, PhotoError::TooLarge { max_bytes: 100 });
    }

    /// A 4000 × 3000 camera-sized JPEG with detail (so that a wrong scale shows): dark on the
    /// left, bright on the right.
    fn camera_jpeg(progressive: bool) -> Vec<u8> {
        let (width, height) = (4000u16, 3000u16);
        let pixels = RgbImage::from_fn(width.into(), height.into(), |x, y| {
            let base = if x < 2000 { 40 } else { 200 };
            Rgb([base + ((x ^ y) % 32) as u8, base + (y % 24) as u8, base])
        });
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder.set_progressive(progressive);
        encoder
            .encode(pixels.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    /// `jpeg` with the phone fixture's EXIF segment (orientation 6, GPS) after its SOI marker.
    fn with_phone_exif(jpeg: &[u8]) -> Vec<u8> {
        let phone = include_bytes!("../../tests/api/fixtures/phone-photo.jpg");
        let start = phone
            .windows(4)
            .position(|w| w[..2] == [0xFF, 0xE1])
            .unwrap();
        let length = usize::from(u16::from_be_bytes([phone[start + 2], phone[start + 3]]));
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&phone[start..start + 2 + length]);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn displayed(photo: &ProcessedPhoto) -> image::RgbImage {
        image::load_from_memory(&photo.display).unwrap().to_rgb8()
    }

    #[test]
    fn a_12_megapixel_jpeg_is_decoded_at_half_size_and_shown_at_1600_by_1200() {
        let bytes = camera_jpeg(false);
        let limits = PhotoLimits::new(16 << 20);
        assert_eq!(inspect(&bytes, &limits).unwrap().decoded, (2000, 1500));
        let photo = process(&bytes, &limits).unwrap();
        assert_eq!((photo.width, photo.height), (1600, 1200));
        let thumb = image::load_from_memory(&photo.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
    }

    #[test]
    fn the_reduced_decode_looks_like_the_full_decode() {
        let bytes = camera_jpeg(false);
        let limits = PhotoLimits::new(16 << 20);
        let reduced = process(&bytes, &limits).unwrap();
        let full = process_as(
            &bytes,
            &limits,
            &inspect_as(&bytes, &limits, false).unwrap(),
        )
        .unwrap()
        .unwrap();
        let (reduced, full) = (displayed(&reduced), displayed(&full));
        assert_eq!(reduced.dimensions(), full.dimensions());
        let difference: u64 = reduced
            .as_raw()
            .iter()
            .zip(full.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = difference as f64 / reduced.as_raw().len() as f64;
        assert!(mean < 6.0, "mean difference {mean}");
    }

    #[test]
    fn a_large_phone_photo_with_orientation_6_is_turned_upright() {
        let bytes = with_phone_exif(&camera_jpeg(false));
        let limits = PhotoLimits::new(16 << 20);
        assert_eq!(inspect(&bytes, &limits).unwrap().decoded, (2000, 1500));
        let photo = process(&bytes, &limits).unwrap();
        assert_eq!((photo.width, photo.height), (1200, 1600));
        // Turned clockwise: the stored dark left half is now the top.
        let shown = displayed(&photo);
        assert!(
            shown.get_pixel(600, 100)[2] < 100,
            "{:?}",
            shown.get_pixel(600, 100)
        );
        assert!(
            shown.get_pixel(600, 1500)[2] > 150,
            "{:?}",
            shown.get_pixel(600, 1500)
        );
        assert!(!photo.display.windows(4).any(|w| w == b"Exif"));
    }

    #[test]
    fn a_large_progressive_jpeg_is_decoded_reduced_and_counts_its_coefficients() {
        let bytes = camera_jpeg(true);
        let limits = PhotoLimits::new(16 << 20);
        let cost = inspect(&bytes, &limits).unwrap();
        assert_eq!(cost.decoded, (2000, 1500));
        assert!(cost.memory >= 4000 * 3000 * 6, "{cost:?}");
        let photo = process(&bytes, &limits).unwrap();
        assert_eq!((photo.width, photo.height), (1600, 1200));
    }

    #[test]
    fn a_large_grayscale_jpeg_is_decoded_reduced() {
        let gray =
            image::GrayImage::from_fn(4000, 3000, |x, y| image::Luma([((x ^ y) % 251) as u8]));
        let mut bytes = Vec::new();
        DynamicImage::ImageLuma8(gray)
            .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, 90))
            .unwrap();
        let limits = PhotoLimits::new(16 << 20);
        assert_eq!(inspect(&bytes, &limits).unwrap().decoded, (2000, 1500));
        let photo = process(&bytes, &limits).unwrap();
        assert_eq!((photo.width, photo.height), (1600, 1200));
    }

    #[test]
    fn a_jpeg_less_than_twice_the_display_size_is_decoded_at_full_size() {
        let cost = inspect(&jpeg(3000, 2000), &PhotoLimits::new(16 << 20)).unwrap();
        assert_eq!(cost.decoded, (3000, 2000));
    }

    #[test]
    fn a_12_megapixel_jpeg_needs_well_under_half_the_memory_of_a_full_decode() {
        let bytes = camera_jpeg(false);
        let limits = PhotoLimits::new(16 << 20);
        let reduced = inspect(&bytes, &limits).unwrap().memory - bytes.len() as u64;
        let full = inspect_as(&bytes, &limits, false).unwrap().memory - bytes.len() as u64;
        assert!(full > 40_000_000, "{full}");
        assert!(reduced * 100 < full * 45, "{reduced} of {full}");
    }

    #[test]
    fn human_sizes_read_well() {
        assert_eq!(human_bytes(8 << 20), "8 MiB");
        assert_eq!(human_bytes(2_048_000), "2.0 MiB");
        assert_eq!(human_bytes(2048), "2 KiB");
    }
}
