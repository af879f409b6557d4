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

// The app as a process and wrk's figures, as the HTTP benchmark has them.
#[allow(dead_code)]
#[path = "../http/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../../tests/api/telemetry/fake_ingestion.rs"]
mod fake_ingestion;
mod helpers;
#[allow(dead_code)]
#[path = "../http/load.rs"]
mod load;
#[path = "../http/proc_stat.rs"]
mod proc_stat;

use std::process::{Command, Stdio};
use std::time::Duration;

use app::{App, Binary};
use fake_ingestion::FakeIngestion;
use helpers::fake_identity::FakeIdentity;
use load::wrk;
use sqlx::Connection;

/// The build measured: this one, or `RESTAURANT_REVIEW_BINARY`.
fn binary() -> Binary {
    match std::env::var("RESTAURANT_REVIEW_BINARY") {
        Ok(path) => Binary {
            label: path.clone(),
            path,
        },
        Err(_) => Binary::this_build(),
    }
}

/// CPU time the app has used (user + system), from /proc: its own cost, apart from the
/// ingestion stand-in and wrk on the same cores.
fn app_cpu(app: &App) -> Duration {
    proc_stat::process_cpu(app.pid())
}

/// Waits for the export queue to drain: it exports every 5 s, or per 512 spans. (Polling
/// /health until the count settles would not do: each poll is a trace of its own.)
async fn flush_wait() {
    tokio::time::sleep(Duration::from_millis(6500)).await;
}

async fn health(app: &App) -> serde_json::Value {
    reqwest::get(format!("{}/health", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Spans the app has exported so far (its /health), 0 with export off.
async fn exported_spans(app: &App) -> u64 {
    health(app).await["telemetry"]["exported"]
        .as_u64()
        .unwrap_or(0)
}

/// One load's figures and the app's CPU time per request during it.
#[derive(Clone, Copy, Default)]
struct Measured {
    load: load::Load,
    cpu_per_request: Duration,
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
    if !load::installed("wrk") {
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
        let app = App::start(&binary(), &off, dir.path()).await;
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
        let mut best = vec![Measured::default(); configs.len()];
        let mut exported = vec![0u64; configs.len()];
        for _ in 0..rounds {
            for (i, (name, env)) in configs.iter().enumerate() {
                let app = App::start(&binary(), env, dir.path()).await;
                let url = format!("{}{path}", app.base);
                wrk(&url, connections, 1); // warm-up
                let cpu_before = app_cpu(&app);
                // BENCH_PERF=DIR: a CPU profile of the app (perf record) during each load.
                let perf = std::env::var("BENCH_PERF").ok().map(|dir| {
                    let file = format!(
                        "{dir}/{}-{}.perf",
                        label.replace(['/', '{', '}', ' '], ""),
                        name.replace([',', ' ', '/'], "")
                    );
                    Command::new("perf")
                        .args(["record", "--call-graph", "dwarf,16384", "-F", "299", "-q"])
                        .args(["-o", &file, "-p", &app.pid().to_string()])
                        .args(["--", "sleep", &seconds.to_string()])
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("perf")
                });
                let exported_before = exported_spans(&app).await;
                let load = wrk(&url, connections, seconds);
                if let Some(mut perf) = perf {
                    let _ = perf.wait();
                }
                let requests = load.per_second * seconds as f64;
                let measured = Measured {
                    load,
                    cpu_per_request: (app_cpu(&app) - cpu_before).div_f64(requests.max(1.0)),
                };
                // A figure that dropped spans would flatter export: measured runs must not
                // (a smoke run, a debug build for 1 s, only shows that the benchmark works).
                if i > 0 && !smoke {
                    flush_wait().await;
                    let health = health(&app).await;
                    assert_eq!(
                        health["telemetry"]["dropped"], 0,
                        "{name}: spans were dropped: {health}"
                    );
                }
                if measured.load.per_second > best[i].load.per_second {
                    best[i] = measured;
                    exported[i] = exported_spans(&app).await - exported_before;
                }
            }
        }
        let off = best[0];
        for (i, (name, _)) in configs.iter().enumerate() {
            let Measured {
                load,
                cpu_per_request,
            } = best[i];
            let extra = cpu_per_request.as_secs_f64() - off.cpu_per_request.as_secs_f64();
            println!(
                "{:<11} {:<9} {:>9.0} {:>6.0}% {:>6.2} ms {:>7.0} µs {:>7.0} µs {:>10}",
                if i == 0 { label } else { "" },
                name,
                load.per_second,
                load.per_second / off.load.per_second * 100.0,
                load.p99.as_secs_f64() * 1e3,
                cpu_per_request.as_secs_f64() * 1e6,
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
