//! `doctor` with Application Insights configured: the monitoring token's line, then one test
//! event sent with it; refused for a missing role, the fix names the role and the component.

use std::process::Command;
use std::time::Duration;

use super::fake_ingestion::{FakeIngestion, Mode, kind, name};
use crate::helpers::fake_identity::FakeIdentity;
use crate::helpers::process::BINARY;

async fn doctor(identity: &FakeIdentity, ingestion: &FakeIngestion) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .arg("doctor")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IDENTITY_ENDPOINT", &identity.app_service_url)
        .env("IDENTITY_HEADER", identity.header_secret())
        .env("AZURE_CLIENT_ID", identity.client_id())
        .env(
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            ingestion.connection_string(),
        )
        .env("TELEMETRY_CA_CERT_FILE", ingestion.ca_file())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_sends_a_test_event_with_the_monitoring_token_and_names_the_role_when_refused() {
    let identity = FakeIdentity::start(Duration::from_secs(3600)).await;
    let ingestion = FakeIngestion::start().await;

    let (ok, report) = doctor(&identity, &ingestion).await;
    assert!(ok, "{report}");
    assert!(
        report.contains("✓ token https://monitor.azure.com//.default"),
        "{report}"
    );
    assert!(report.contains("✓ application insights"), "{report}");
    assert!(
        ingestion
            .envelopes()
            .iter()
            .any(|e| kind(e) == "Event" && name(e) == "restaurant-review doctor test event"),
        "the test event arrived"
    );

    // Azure answers 403 when the identity lacks Monitoring Metrics Publisher.
    ingestion.set_mode(Mode::Refuse(403));
    let (ok, report) = doctor(&identity, &ingestion).await;
    assert!(!ok, "{report}");
    assert!(report.contains("✗ application insights"), "{report}");
    assert!(
        report.contains("\"Monitoring Metrics Publisher\""),
        "{report}"
    );
    assert!(report.contains("microsoft.insights/components"), "{report}");
    assert!(!report.contains(identity.header_secret()));
    for token in identity.tokens() {
        assert!(!report.contains(&token), "a token was printed");
    }
}
