//! What exporting telemetry costs: `GET /` and `GET /{id}/` loaded with wrk on the release
//! binary with export off (nothing configured) and on (Application Insights, to the tests'
//! fake ingestion endpoint over HTTPS with the managed identity's token), side by side in one
//! run, alternating off and on for each route. PostgreSQL on 127.0.0.1 (trust), a fresh
//! database seeded through the app's own forms.
//!
//! Run: `cargo bench --bench telemetry`, or with another build of the app (the release binary
//! from a debug-built driver: `RESTAURANT_REVIEW_BINARY=target/release/restaurant-review
//! cargo run --bench telemetry -- --bench` is not a cargo form, so run the built bench file
//! with that variable). Settings: `BENCH_SECONDS` per load (default 10),
//! `BENCH_CONNECTIONS` (default 32), `BENCH_ROUNDS` (default 2), `BENCH_SAMPLE_RATIO` (one more
//! column: export on with microsoft.fixed_percentage at that ratio), `BENCH_PERF=DIR` (a perf
//! profile of the app during each load), `TEST_POSTGRES_URL`
//! (default postgres://postgres@127.0.0.1:5432/postgres).

#[allow(dead_code)]
#[path = "../../tests/api/telemetry/fake_ingestion.rs"]
mod fake_ingestion;
mod helpers;
#[path = "../http/proc_stat.rs"]
mod proc_stat;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_ingestion::FakeIngestion;
use helpers::fake_identity::FakeIdentity;
use sqlx::Connection;

const BINARY: &str = env!("CARGO_BIN_EXE_restaurant-review");

struct App {
    child: Child,
    base: String,
}

impl App {
    async fn start(env: &[(&str, String)], dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = std::env::var("RESTAURANT_REVIEW_BINARY").unwrap_or_else(|_| BINARY.into());
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", port.to_string())
            // The seeding posts more than a person would; the rate limit is not what is measured.
            .env("RATE_LIMIT_POSTS_PER_MINUTE", "0")
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting the app");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(format!("{base}/health")).await
                && response.status().is_success()
            {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "the app exited");
            assert!(started.elapsed() < Duration::from_secs(60), "no start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, base }
    }

    /// CPU time the app has used (user + system), from /proc: its own cost, apart from the
    /// ingestion stand-in and wrk on the same cores.
    fn cpu(&self) -> Duration {
        proc_stat::process_cpu(self.child.id())
    }

    /// Waits for the export queue to drain: it exports every 5 s, or per 512 spans. (Polling
    /// /health until the count settles would not do: each poll is a trace of its own.)
    async fn flush_wait(&self) {
        tokio::time::sleep(Duration::from_millis(6500)).await;
    }

    async fn health(&self) -> serde_json::Value {
        reqwest::get(format!("{}/health", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Spans the app has exported so far (its /health), 0 with export off.
async fn exported_spans(app: &App) -> u64 {
    app.health().await["telemetry"]["exported"]
        .as_u64()
        .unwrap_or(0)
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, Default)]
struct Load {
    per_second: f64,
    p99: Duration,
    /// The app's CPU time per request during the load.
    cpu_per_request: Duration,
}

fn wrk(url: &str, connections: u32, seconds: u64) -> Load {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--latency", "--timeout", "10s", url])
        .output()
        .expect("wrk (bash scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!text.contains("Non-2xx"), "{url} answered errors:\n{text}");
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("99%"), Some(v)) => load.p99 = wrk_duration(v),
            (Some("Requests/sec:"), Some(v)) => load.per_second = v.parse().unwrap(),
            _ => {}
        }
    }
    load
}

fn wrk_duration(text: &str) -> Duration {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (text.trim_end_matches('s'), 1.0)
    };
    Duration::from_secs_f64(number.parse::<f64>().unwrap() * scale)
}

/// Restaurants through the form (as a browser would), a few reviews on the one loaded.
async fn seed(base: &str) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let csrf = |html: &str| {
        let marker = "name=\"csrfmiddlewaretoken\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let mut page = String::new();
    for i in 0..20 {
        let html = client.get(format!("{base}/create")).send().await.unwrap();
        let token = csrf(&html.text().await.unwrap());
        let response = client
            .post(format!("{base}/add"))
            .form(&[
                ("csrfmiddlewaretoken", token.as_str()),
                ("restaurant_name", &format!("Bench Restaurant {i}")),
                ("description", "Seeded by the telemetry benchmark."),
                ("confirm_duplicate", "yes"),
            ])
            .send()
            .await
            .unwrap();
        page = response.headers()["location"].to_str().unwrap().to_owned();
    }
    for i in 0..10 {
        let html = client.get(format!("{base}{page}")).send().await.unwrap();
        let token = csrf(&html.text().await.unwrap());
        let form = reqwest::multipart::Form::new()
            .text("csrfmiddlewaretoken", token)
            .text("user_name", format!("Bencher {i}"))
            .text("rating", "4")
            .text("review_text", "Seeded review.");
        client
            .post(format!("{base}/review/{}", page.trim_matches('/')))
            .multipart(form)
            .send()
            .await
            .unwrap();
    }
    page
}

#[tokio::main]
async fn main() {
    restaurant_review::startup::install_tls_provider();
    let smoke = !std::env::args().any(|a| a == "--bench");
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = if smoke { 1 } else { var("BENCH_SECONDS", 10) };
    let rounds = if smoke { 1 } else { var("BENCH_ROUNDS", 2) };
    let connections = var("BENCH_CONNECTIONS", 32) as u32;
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("telemetry benchmark skipped: wrk is not installed");
        return;
    }
    let admin = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let database = format!("bench_telemetry_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let database_url = format!("{}/{database}", admin.rsplit_once('/').unwrap().0);

    let identity = FakeIdentity::start(Duration::from_secs(24 * 3600)).await;
    let ingestion = FakeIngestion::start().await;
    ingestion.discard_envelopes();
    let dir = tempfile::tempdir().unwrap();
    let off: Vec<(&str, String)> = vec![("DATABASE_URL", database_url.clone())];
    let mut on = off.clone();
    on.extend([
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            ingestion.connection_string(),
        ),
        ("TELEMETRY_CA_CERT_FILE", ingestion.ca_file()),
        ("IDENTITY_ENDPOINT", identity.app_service_url.clone()),
        ("IDENTITY_HEADER", identity.header_secret().to_owned()),
        ("AZURE_CLIENT_ID", identity.client_id().to_owned()),
    ]);
    // The default (Application Insights' rate-limited sampler, 5 traces a second) and every
    // trace exported (microsoft.fixed_percentage 1.0); BENCH_SAMPLE_RATIO=r adds a column at r.
    let mut every = on.clone();
    every.push(("OTEL_TRACES_SAMPLER", "microsoft.fixed_percentage".into()));
    every.push(("OTEL_TRACES_SAMPLER_ARG", "1.0".into()));
    let mut configs: Vec<(String, Vec<(&str, String)>)> = vec![
        ("off".into(), off.clone()),
        ("on, 5/s".into(), on.clone()),
        ("on, all".into(), every),
    ];
    if let Ok(ratio) = std::env::var("BENCH_SAMPLE_RATIO") {
        let mut sampled = on.clone();
        sampled.push(("OTEL_TRACES_SAMPLER", "microsoft.fixed_percentage".into()));
        sampled.push(("OTEL_TRACES_SAMPLER_ARG", ratio.clone()));
        configs.push((format!("on, {ratio}"), sampled));
    }
    let page = {
        let app = App::start(&off, dir.path()).await;
        seed(&app.base).await
    };

    println!(
        "telemetry export off vs on (Application Insights, fake ingestion over HTTPS), PostgreSQL on loopback, {connections} connections, {seconds} s a load, best of {rounds} rounds, configurations alternating"
    );
    println!(
        "{:<11} {:<9} {:>9} {:>7} {:>9} {:>10} {:>10} {:>10}",
        "route", "export", "req/s", "of off", "p99", "CPU/req", "+CPU/req", "exported"
    );
    for (label, path) in [("GET /", "/".to_owned()), ("GET /{id}/", page.clone())] {
        let mut best = vec![Load::default(); configs.len()];
        let mut exported = vec![0u64; configs.len()];
        for _ in 0..rounds {
            for (i, (name, env)) in configs.iter().enumerate() {
                let app = App::start(env, dir.path()).await;
                let url = format!("{}{path}", app.base);
                wrk(&url, connections, 1); // warm-up
                let cpu_before = app.cpu();
                // BENCH_PERF=DIR: a CPU profile of the app (perf record) during each load.
                let perf = std::env::var("BENCH_PERF").ok().map(|dir| {
                    let file = format!(
                        "{dir}/{}-{}.perf",
                        label.replace(['/', '{', '}', ' '], ""),
                        name.replace([',', ' ', '/'], "")
                    );
                    Command::new("perf")
                        .args(["record", "--call-graph", "dwarf,16384", "-F", "299", "-q"])
                        .args(["-o", &file, "-p", &app.child.id().to_string()])
                        .args(["--", "sleep", &seconds.to_string()])
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("perf")
                });
                let exported_before = exported_spans(&app).await;
                let mut load = wrk(&url, connections, seconds);
                if let Some(mut perf) = perf {
                    let _ = perf.wait();
                }
                let requests = load.per_second * seconds as f64;
                load.cpu_per_request = (app.cpu() - cpu_before).div_f64(requests.max(1.0));
                // A figure that dropped spans would flatter export: measured runs must not
                // (a smoke run, a debug build for 1 s, only shows that the benchmark works).
                if i > 0 && !smoke {
                    app.flush_wait().await;
                    let health = app.health().await;
                    assert_eq!(
                        health["telemetry"]["dropped"], 0,
                        "{name}: spans were dropped: {health}"
                    );
                }
                if load.per_second > best[i].per_second {
                    best[i] = load;
                    exported[i] = exported_spans(&app).await - exported_before;
                }
            }
        }
        let off_load = best[0];
        for (i, (name, _)) in configs.iter().enumerate() {
            let load = best[i];
            let extra = load.cpu_per_request.as_secs_f64() - off_load.cpu_per_request.as_secs_f64();
            println!(
                "{:<11} {:<9} {:>9.0} {:>6.0}% {:>6.2} ms {:>7.0} µs {:>7.0} µs {:>10}",
                if i == 0 { label } else { "" },
                name,
                load.per_second,
                load.per_second / off_load.per_second * 100.0,
                load.p99.as_secs_f64() * 1e3,
                load.cpu_per_request.as_secs_f64() * 1e6,
                extra * 1e6,
                if i == 0 {
                    "-".to_owned()
                } else {
                    exported[i].to_string()
                },
            );
        }
    }
    println!("(ingestion received {} items in all)", ingestion.received());
    drop(conn);
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
}
