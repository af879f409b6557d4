//! The OpenAPI document and the code cannot drift: every operation in the document is
//! answered by a handler and no other method is, and an independent schema-driven fuzzer
//! (schemathesis, pinned, installed from PyPI by scripts/test.sh) runs against the app and its
//! own document: no 5xx, every status, header, content type and body as documented.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, both_backends};

/// Schemathesis's version, pinned; scripts/test.sh installs this one.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[apply(both_backends)]
async fn every_documented_operation_has_a_handler_and_no_undocumented_method_does(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = reqwest::Client::new();
    let created = client
        .post(app.url("/api/v1/restaurants"))
        .json(&json!({"restaurant_name": "Chez Drift", "description": "Probed."}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let document: Value = client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 4, "{paths:?}");
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1").replace("{review_id}", "1");
        for method in METHODS {
            let documented = item.get(method.to_lowercase()).is_some();
            let response = client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(&concrete),
                )
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = body["type"] == "/api/docs#problem-no-such-resource";
            if documented {
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED && !unrouted,
                    "{method} {path} is in the document but no handler answers it: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is answered but not in the document: {body}"
                );
            }
        }
    }
    // Every route under /api/v1 that the document does not list is the catch-all's.
    for undocumented in [
        "/api/v1/reviews",
        "/api/v1/restaurants/1/photos",
        "/api/v2/restaurants",
    ] {
        let body: Value = client
            .get(app.url(undocumented))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body["type"], "/api/docs#problem-no-such-resource",
            "{undocumented}"
        );
    }
}

/// The pinned schemathesis: `SCHEMATHESIS` or the venv scripts/test.sh makes.
fn schemathesis() -> Option<PathBuf> {
    let path = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis-venv/bin/st")
        });
    let version = Command::new(&path).arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.contains(SCHEMATHESIS_VERSION),
        "{} is not schemathesis {SCHEMATHESIS_VERSION}: {version}",
        path.display()
    );
    Some(path)
}

#[apply(both_backends)]
async fn schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_document(
    backend: Backend,
) {
    let Some(st) = schemathesis() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "schemathesis {SCHEMATHESIS_VERSION} is required in CI (scripts/test.sh installs it)"
            );
        }
        eprintln!(
            "SKIPPED: schemathesis is not installed (bash scripts/test.sh installs it into target/schemathesis-venv)"
        );
        return;
    };
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let base = app.address.clone();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args([
                "run",
                &format!("{base}/api/openapi.json"),
                "--url",
                &base,
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
                "--max-examples",
                "30",
                // Reproducible in CI; a failure prints the request to replay.
                "--seed",
                "20",
                "--request-timeout",
                "20",
                "--no-color",
            ])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            // Its run cache goes there, not into the repository.
            .current_dir(std::env::temp_dir())
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("schemathesis finishes within 4 minutes")
        .unwrap()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
