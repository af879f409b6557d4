//! Large JPEGs decoded at a reduced size. A JPEG's DCT can be inverted at 1/2, 1/4 or 1/8 of
//! the image's size for less work than the full size, so a 12 MP photo shown at 1600 px is
//! decoded at 2000 × 1500 and never held at full size. image's decoder (zune-jpeg) cannot do
//! this; jpeg-decoder (also image-rs) can. Anything unusual keeps the full decode.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{ColorType, DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::{CodingProcess, Decoder, PixelFormat};

/// The reduced size a JPEG is decoded at, with what its pixels are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reduced {
    pub width: u32,
    pub height: u32,
    pub color: ColorType,
}

/// The reduced size `bytes` (a JPEG of `width` × `height`, read by image's decoder) decode to:
/// the smallest DCT scale whose long edge is still at least `edge`. None when it would not be
/// reduced, or when it is not a plain 8-bit grey or colour JPEG (CMYK, 12-bit, lossless,
/// arithmetic-coded, or read differently by the two decoders): those are decoded at full size.
pub fn reduced_size(bytes: &[u8], width: u32, height: u32, edge: u32) -> Option<Reduced> {
    let mut decoder = Decoder::new(bytes);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    if (u32::from(info.width), u32::from(info.height)) != (width, height)
        || info.coding_process == CodingProcess::Lossless
    {
        return None;
    }
    let color = match info.pixel_format {
        PixelFormat::L8 => ColorType::L8,
        PixelFormat::RGB24 => ColorType::Rgb8,
        PixelFormat::L16 | PixelFormat::CMYK32 => return None,
    };
    let edge = u16::try_from(edge).ok()?;
    let (reduced_width, reduced_height) = decoder.scale(edge, edge).ok()?;
    let reduced = (u32::from(reduced_width), u32::from(reduced_height));
    (reduced != (width, height)).then_some(Reduced {
        width: reduced.0,
        height: reduced.1,
        color,
    })
}

/// Decodes `bytes` at the size [`reduced_size`] chose, allocating at most `max_alloc` bytes
/// for the pixels, and reads the EXIF orientation the same way image's decoder does.
pub fn decode_reduced(
    bytes: &[u8],
    expected: Reduced,
    edge: u32,
    max_alloc: u64,
) -> Result<(DynamicImage, Orientation), jpeg_decoder::Error> {
    let mut decoder = Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(usize::try_from(max_alloc).unwrap_or(usize::MAX));
    let edge = u16::try_from(edge).unwrap_or(u16::MAX);
    let (width, height) = decoder.scale(edge, edge)?;
    let (width, height) = (u32::from(width), u32::from(height));
    let pixels = decoder.decode()?;
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let image = match expected.color {
        _ if (width, height) != (expected.width, expected.height) => None,
        ColorType::L8 => GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8),
        ColorType::Rgb8 => RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
        _ => None,
    };
    let image = image.ok_or_else(|| {
        jpeg_decoder::Error::Format("the pixels are not the size announced".to_owned())
    })?;
    Ok((image, orientation))
}

/// Scales a reduced JPEG's pixels (8-bit grey or RGB) to `width` × `height` with a triangle
/// filter, as image's `resize_exact` would, without its float intermediate (16 bytes a pixel,
/// 38 MB for a 12 MP photo): across, then down, each pass writing straight into its result.
/// None for any other pixel type.
pub fn resize_reduced(image: DynamicImage, width: u32, height: u32) -> Option<DynamicImage> {
    let across = resize(&image, width, image.height())?;
    drop(image);
    resize(&across, width, height)
}

fn resize(image: &DynamicImage, width: u32, height: u32) -> Option<DynamicImage> {
    let (pixel_type, bytes) = match image {
        DynamicImage::ImageLuma8(gray) => (PixelType::U8, gray.as_raw()),
        DynamicImage::ImageRgb8(rgb) => (PixelType::U8x3, rgb.as_raw()),
        _ => return None,
    };
    let source = ImageRef::new(image.width(), image.height(), bytes, pixel_type).ok()?;
    let mut target = Image::new(width, height, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(&source, &mut target, &options).ok()?;
    let pixels = target.into_vec();
    match pixel_type {
        PixelType::U8 => GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8),
        _ => RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
    }
}

/// A progressive JPEG's frame header is SOF2 (or SOF10 with arithmetic coding).
pub fn is_progressive(bytes: &[u8]) -> bool {
    let mut decoder =
        zune_jpeg::JpegDecoder::new(zune_jpeg::zune_core::bytestream::ZCursor::new(bytes));
    match decoder.decode_headers() {
        Ok(()) => decoder.info().is_some_and(|info| info.sof.is_progressive()),
        // The real decode reports the damage; assume the costlier kind until then.
        Err(_) => true,
    }
}

/// A complete JPEG ends with the EOI marker (FF D9); phones sometimes append data after it,
/// so look for it in the tail rather than only at the very end.
pub fn has_end_of_image_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64 * 1024)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}
