//! Photo pipeline benchmark: a 12-megapixel camera JPEG (4000 × 3000, noisy, ~5 MB).
//!
//! Measures, side by side in one run (iterations interleaved), `process` (the JPEG decoded at
//! 1/2 scale in the DCT) against the full-size decode it replaced (`process_at_full_size`),
//! with the memory each is budgeted; then the real binary (this profile's build) taking 8
//! such uploads at once: uploads per second, idle and peak resident memory (VmRSS, VmHWM).
//!
//! Run: `cargo bench --bench photos` (Linux: memory is read from /proc).

use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use restaurant_review::photos::PhotoLimits;
use restaurant_review::photos::processing::{inspect, process, process_at_full_size};

const ITERATIONS: usize = 10;
const UPLOADS: usize = 8;

/// Noise over gradients, so the entropy-coded data is camera-sized.
fn camera_jpeg() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let image = RgbImage::from_fn(4000, 3000, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 48) as u8;
        Rgb([
            (x / 16) as u8 / 2 + noise,
            (y / 12) as u8 / 2 + noise,
            ((x + y) / 28) as u8 / 2 + noise,
        ])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 92)
        .write_image(image.as_raw(), 4000, 3000, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn csrf(html: &str) -> String {
    let marker = "name=\"csrfmiddlewaretoken\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

async fn upload(client: &reqwest::Client, base: &str, restaurant: &str, photo: Vec<u8>) {
    let page = client
        .get(format!("{base}{restaurant}"))
        .send()
        .await
        .unwrap();
    let token = csrf(&page.text().await.unwrap());
    let part = reqwest::multipart::Part::bytes(photo)
        .file_name("camera.jpg")
        .mime_str("image/jpeg")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("csrfmiddlewaretoken", token)
        .text("user_name", "Bench")
        .text("rating", "4")
        .text("review_text", "Twelve megapixels.")
        .part("reviewImage", part);
    let id = restaurant.trim_matches('/');
    let response = client
        .post(format!("{base}/review/{id}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
}

async fn concurrent_uploads(photo: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_restaurant-review"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        // Uploads in bulk from one address.
        .env("RATE_LIMIT_POSTS_PER_MINUTE", "0")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    while client.get(format!("{base}/create")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the app starts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = client.get(format!("{base}/create")).send().await.unwrap();
    let token = csrf(&page.text().await.unwrap());
    let response = client
        .post(format!("{base}/add"))
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("restaurant_name", "Bench"),
            ("description", "Benchmark."),
        ])
        .send()
        .await
        .unwrap();
    let restaurant = response.headers()["location"].to_str().unwrap().to_owned();
    let fresh_kib = status_kib(child.id(), "VmRSS:");
    // Warm-up: one upload, so the idle figure is the process after its first photo too.
    upload(&client, &base, &restaurant, photo.to_vec()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm_kib = status_kib(child.id(), "VmRSS:");
    let started = Instant::now();
    let uploads = (0..UPLOADS).map(|_| upload(&client, &base, &restaurant, photo.to_vec()));
    futures_util::future::join_all(uploads).await;
    let elapsed = started.elapsed();
    let peak_kib = status_kib(child.id(), "VmHWM:");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_kib = status_kib(child.id(), "VmRSS:");
    println!(
        "{UPLOADS} concurrent uploads (real binary): {:.1} s, {:.2} uploads/s, peak RSS (VmHWM) {} MiB",
        elapsed.as_secs_f64(),
        UPLOADS as f64 / elapsed.as_secs_f64(),
        peak_kib / 1024
    );
    println!(
        "idle RSS: {} MiB before any photo, {} MiB after one, {} MiB 2 s after the {UPLOADS}",
        fresh_kib / 1024,
        warm_kib / 1024,
        after_kib / 1024
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

fn main() {
    // Under `cargo test --all-targets` (no `--bench`), one iteration: a smoke run.
    let iterations = if std::env::args().any(|arg| arg == "--bench") {
        ITERATIONS
    } else {
        println!("smoke run under cargo test: `cargo bench --bench photos` measures");
        1
    };
    let photo = camera_jpeg();
    let limits = PhotoLimits::new(16 << 20);
    println!(
        "12 MP JPEG: {} bytes; budgeted memory {} MiB",
        photo.len(),
        inspect(&photo, &limits).unwrap().memory >> 20
    );
    let (mut reduced, mut full) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let started = Instant::now();
        process(&photo, &limits).unwrap();
        reduced.push(started.elapsed());
        let started = Instant::now();
        process_at_full_size(&photo, &limits).unwrap();
        full.push(started.elapsed());
    }
    let (reduced, full) = (median(reduced), median(full));
    println!(
        "process, median of {iterations}: full-size decode (before) {}, DCT-scaled decode (after) {}: {:.2}× faster",
        ms(full),
        ms(reduced),
        full.as_secs_f64() / reduced.as_secs_f64()
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(concurrent_uploads(&photo));
}
