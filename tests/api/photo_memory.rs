//! Memory follows the pixels, not the upload: the real binary, sent photos that are small on the
//! wire and huge once decoded, keeps its peak memory within the photo budget plus its own.

use std::time::Duration;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use reqwest::StatusCode;

use crate::helpers::photo_part;
use crate::helpers::process::{AppProcess, add_restaurant, browser, get_page, post_review_form};

/// The whole process, budget included, under the bound.
const PEAK_RSS_BOUND: u64 = 256 * 1024 * 1024;

/// A PNG of `width` × `height` flat pixels: a few hundred KB that decode to w × h × bpp bytes.
fn flat_png(width: u32, height: u32, color: ExtendedColorType) -> Vec<u8> {
    let bytes_per_pixel = color.bits_per_pixel() as usize / 8;
    let pixels = vec![90u8; width as usize * height as usize * bytes_per_pixel];
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter)
        .write_image(&pixels, width, height, color)
        .unwrap();
    out
}

/// A 12-megapixel camera-sized JPEG (4000 × 3000) with some detail in it.
fn twelve_megapixel_jpeg() -> Vec<u8> {
    let image = image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, ((x + y) / 28) as u8])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(image.as_raw(), 4000, 3000, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// The process's peak resident memory so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

async fn post_photo(
    client: &reqwest::Client,
    app: &AppProcess,
    restaurant: &str,
    photo: Vec<u8>,
    file_name: &str,
    mime: &str,
) -> (StatusCode, String) {
    let response = post_review_form(client, app, restaurant, |form| {
        form.text("user_name", "Pixel Counter")
            .text("rating", "4")
            .text("review_text", "Big picture.")
            .part("reviewImage", photo_part(&photo, file_name, mime))
    })
    .await;
    let status = response.status();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_photos_huge_once_decoded_at_once_stay_within_the_memory_bound() {
    if !cfg!(target_os = "linux") {
        eprintln!("SKIPPED: peak memory is read from /proc, which only Linux has");
        return;
    }
    // 49 megapixels each (the limit is 50): 160 KB on the wire, 147 MB decoded. Made before
    // the app is asked anything, so no kept-alive connection idles out meanwhile.
    let png = flat_png(7000, 7000, ExtendedColorType::Rgb8);
    let jpeg = twelve_megapixel_jpeg();
    let mut app = AppProcess::start(&[]);
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let response = add_restaurant(&client, &app, "The Big Picture").await;
    let restaurant = response.headers()["location"].to_str().unwrap().to_owned();
    let idle = peak_rss(app.pid());
    let uploads = (0..8).map(|i| {
        let (photo, name, mime) = if i % 2 == 0 {
            (png.clone(), "huge.png", "image/png")
        } else {
            (jpeg.clone(), "camera.jpg", "image/jpeg")
        };
        let (client, app, restaurant) = (client.clone(), &app, restaurant.clone());
        async move {
            let started = std::time::Instant::now();
            let outcome = post_photo(&client, app, &restaurant, photo, name, mime).await;
            eprintln!("{name}: {} after {:?}", outcome.0, started.elapsed());
            outcome
        }
    });
    let outcomes = tokio::time::timeout(
        Duration::from_secs(240),
        futures_util::future::join_all(uploads),
    )
    .await
    .expect("eight uploads finish within 4 minutes");
    let peak = peak_rss(app.pid());
    eprintln!(
        "peak RSS {} MiB (idle {} MiB) after 8 concurrent uploads (4 × 49 MP PNG, 4 × 12 MP JPEG)",
        peak >> 20,
        idle >> 20
    );
    for (status, page) in &outcomes {
        assert_eq!(*status, StatusCode::SEE_OTHER, "{page}");
    }
    assert!(
        peak <= PEAK_RSS_BOUND,
        "peak RSS {} MiB is over {} MiB",
        peak >> 20,
        PEAK_RSS_BOUND >> 20
    );
}

#[tokio::test]
async fn a_photo_too_big_to_decode_within_the_budget_is_refused_with_the_form_kept() {
    // 25 megapixels of 16-bit RGBA: 200 MB decoded, over a 64 MiB budget.
    let png = flat_png(5000, 5000, ExtendedColorType::Rgba16);
    let mut app = AppProcess::start(&[("PHOTO_MEMORY_LIMIT_MB", "64")]);
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let response = add_restaurant(&client, &app, "Too Much").await;
    let restaurant = response.headers()["location"].to_str().unwrap().to_owned();
    let (status, page) = post_photo(&client, &app, &restaurant, png, "deep.png", "image/png").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("too many pixels"), "{page}");
    assert!(
        page.contains("Pixel Counter"),
        "the typed name is kept: {page}"
    );
    let listing = get_page(&client, &app, &restaurant).await;
    assert!(!listing.contains("Big picture."), "nothing was stored");
}
