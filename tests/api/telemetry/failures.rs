//! Telemetry never hurts the app: with ingestion refusing or down, pages are served as
//! before, the bounded queue drops (and counts) instead of growing, the log says so once, and
//! export resumes by itself when ingestion is back.

use std::time::{Duration, Instant};

use rstest::rstest;

use super::fake_ingestion::{FakeIngestion, Mode, kind};
use super::{EVERY_TRACE, QUICK_EXPORT, exporting_to};
use crate::helpers::fake_identity::FakeIdentity;
use crate::helpers::process::{AppProcess, get_health};

const QUEUE: &str = "32";
const DROPPING_LINE: &str = "telemetry is being dropped";

#[rstest]
#[case::unauthorized(Mode::Refuse(401))]
#[case::throttled(Mode::Refuse(429))]
#[case::failing(Mode::Refuse(500))]
#[case::down(Mode::Down)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ingestion_refusing_or_down_pages_are_served_drops_are_counted_and_export_resumes(
    #[case] outage: Mode,
) {
    let identity = FakeIdentity::start(Duration::from_secs(3600)).await;
    let ingestion = FakeIngestion::start().await;
    ingestion.set_mode(outage);
    let settings = exporting_to(&ingestion, &identity);
    let mut vars: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("OTEL_BSP_MAX_QUEUE_SIZE", QUEUE),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8"),
        // The exporter retries 429 and 500 for up to 35 s; the export gives up sooner.
        ("OTEL_BSP_EXPORT_TIMEOUT", "500"),
    ]);
    vars.extend(QUICK_EXPORT);
    vars.extend(EVERY_TRACE);
    let mut app = AppProcess::start(&vars);
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = reqwest::Client::new();

    // Far more spans than the queue holds, all while ingestion is refusing or down.
    let started = Instant::now();
    for _ in 0..20 {
        let pages = (0..10).map(|_| client.get(app.url("/")).send());
        for page in futures_util::future::join_all(pages).await {
            assert_eq!(page.unwrap().status(), reqwest::StatusCode::OK);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "pages waited on telemetry"
    );
    let during = get_health(&client, &app).await;
    let telemetry = &during["telemetry"];
    assert_eq!(during["status"], "ok", "{during}");
    assert_eq!(telemetry["state"], "dropping", "{during}");
    assert!(telemetry["dropped"].as_u64().unwrap() > 0, "{during}");
    assert!(telemetry["last_error"].is_string(), "{during}");
    assert_eq!(app.output().matches(DROPPING_LINE).count(), 1, "said once");

    // Back: export resumes on its own, and the log says so.
    ingestion.set_mode(Mode::Accept);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.get(app.url("/")).send().await.unwrap();
        let now = get_health(&client, &app).await;
        let arrived = ingestion.envelopes().iter().any(|e| kind(e) == "Request");
        if now["telemetry"]["state"] == "ok" && arrived {
            break;
        }
        assert!(Instant::now() < deadline, "export did not resume: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ingestion.received() > 0);
    // The line reaches the captured output a moment after /health says so.
    for _ in 0..50 {
        if app.output().contains("telemetry export resumed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.output().contains("telemetry export resumed"),
        "{}",
        app.output()
    );
    assert_eq!(app.output().matches(DROPPING_LINE).count(), 1);
}
