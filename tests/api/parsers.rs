//! Image sniffing and processing never panic: arbitrary bytes and mangled real images (cut
//! short, bytes flipped, one format's header spliced onto another's body) are a photo or a
//! `PhotoError`; small valid images come out with their size and format; and the checked-in
//! corpus of nasty files gets its expected outcome. (The text parsers' properties live next
//! to them in the library: `cargo test --lib proptests`.)

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use proptest::prelude::*;
use restaurant_review::photos::processing::{DISPLAY_EDGE, process};
use restaurant_review::photos::{PhotoError, PhotoFormat, PhotoLimits, ProcessedPhoto};

#[path = "../corpus/read.rs"]
mod corpus;

/// Low enough that a header mangled into claiming a large image is refused or decodes fast.
fn limits() -> PhotoLimits {
    PhotoLimits {
        max_dimension: 2048,
        max_pixels: 1_000_000,
        max_memory: 64 << 20,
        ..PhotoLimits::new(256 * 1024)
    }
}

const FORMATS: [PhotoFormat; 3] = [PhotoFormat::Jpeg, PhotoFormat::Png, PhotoFormat::Webp];

fn encoded(format: PhotoFormat, width: u32, height: u32) -> Vec<u8> {
    let pixels = RgbaImage::from_fn(width, height, |x, y| {
        Rgba([(x * 7) as u8, (y * 13) as u8, (x ^ y) as u8, 200])
    });
    let image = match format {
        // JPEG has no alpha channel.
        PhotoFormat::Jpeg => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(pixels).to_rgb8()),
        _ => DynamicImage::ImageRgba8(pixels),
    };
    let mut out = Cursor::new(Vec::new());
    let format = match format {
        PhotoFormat::Jpeg => ImageFormat::Jpeg,
        PhotoFormat::Png => ImageFormat::Png,
        PhotoFormat::Webp => ImageFormat::WebP,
    };
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn class(result: &Result<ProcessedPhoto, PhotoError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(PhotoError::TooLarge { .. }) => "too-large",
        Err(PhotoError::NotAnImage) => "not-an-image",
        Err(PhotoError::UnsupportedType(_)) => "unsupported",
        Err(PhotoError::Unreadable) => "unreadable",
        Err(PhotoError::TooManyPixels { .. }) => "too-many-pixels",
        Err(PhotoError::Busy) => "busy",
        Err(PhotoError::Internal) => "internal",
    }
}

/// What `process` must agree with: the type it detects decides whether the bytes are
/// refused as not an image (or not a supported one) before any decoding.
fn check_consistent(bytes: &[u8]) -> Result<(), TestCaseError> {
    let detected = PhotoFormat::detect(bytes);
    let processed = process(bytes, &limits());
    match (&detected, &processed) {
        (Err(refusal), Err(error)) => prop_assert_eq!(refusal, error),
        (Err(refusal), Ok(_)) => {
            prop_assert!(false, "detect refused ({refusal:?}), process did not")
        }
        (Ok(_), result) => prop_assert!(
            !matches!(class(result), "not-an-image" | "unsupported" | "internal"),
            "detected {detected:?}, then {result:?}"
        ),
    }
    if let Ok(photo) = processed {
        prop_assert!(photo.width.max(photo.height) <= DISPLAY_EDGE);
        prop_assert_eq!(photo.name.format(), detected.unwrap());
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mangle {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    /// The first bytes of an image of another format in place of this one's.
    SpliceHeader(PhotoFormat, prop::sample::Index),
    Append(Vec<u8>),
}

fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mangle::Truncate),
        (any::<prop::sample::Index>(), 1..=u8::MAX).prop_map(|(at, x)| Mangle::Flip(at, x)),
        (
            prop::sample::select(FORMATS.to_vec()),
            any::<prop::sample::Index>()
        )
            .prop_map(|(format, at)| Mangle::SpliceHeader(format, at)),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mangle::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, mangle: &Mangle) {
    match mangle {
        Mangle::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Mangle::Flip(at, x) => {
            let at = at.index(bytes.len());
            bytes[at] ^= x;
        }
        Mangle::SpliceHeader(format, at) => {
            let header = encoded(*format, 9, 7);
            let cut = at.index(header.len().min(bytes.len()) + 1);
            bytes.splice(..cut, header[..cut].iter().copied());
        }
        Mangle::Append(tail) => bytes.extend(tail),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_sniffed_and_processed_without_a_panic(
        magic in prop::sample::select(vec![
            &b""[..], b"\xFF\xD8\xFF", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBPVP8 ",
            b"RIFF\xff\xff\xff\xffWEBPVP8L", b"GIF89a", b"BM", b"II*\0",
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        check_consistent(&[magic, &tail[..]].concat())?;
    }

    #[test]
    fn mangled_real_images_are_a_photo_or_a_refusal_never_a_panic(
        format in prop::sample::select(FORMATS.to_vec()),
        (width, height) in (1..40u32, 1..40u32),
        mangles in prop::collection::vec(mangle(), 1..4),
    ) {
        let mut bytes = encoded(format, width, height);
        for mangle in &mangles {
            if bytes.is_empty() { break; }
            apply(&mut bytes, mangle);
        }
        check_consistent(&bytes)?;
    }
}

proptest! {
    // Each case decodes and re-encodes twice in a debug build (about 40 ms): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_small_valid_image_comes_out_with_its_size_and_format(
        format in prop::sample::select(FORMATS.to_vec()),
        (width, height) in (1..64u32, 1..64u32),
    ) {
        let photo = process(&encoded(format, width, height), &limits()).unwrap();
        prop_assert_eq!((photo.width, photo.height), (width, height));
        prop_assert_eq!(photo.name.format(), format);
        // What was stored is itself an acceptable upload, of the same size.
        let again = process(&photo.display, &limits()).unwrap();
        prop_assert_eq!((again.width, again.height), (width, height));
        prop_assert_eq!(PhotoFormat::detect(&photo.thumbnail), Ok(format));
    }
}

#[test]
fn every_photo_corpus_file_gets_its_expected_outcome() {
    corpus::check("photo", |bytes| {
        class(&process(bytes, &limits())).to_owned()
    });
}
