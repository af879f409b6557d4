//! Application Insights through the managed identity: what arrives, under which operation,
//! signed in with which token, and what never arrives.

use std::time::Duration;

use serde_json::Value;

use super::fake_ingestion::{FakeIngestion, base_data, kind, name, operation_id};
use super::{
    EVERY_TRACE, QUICK_EXPORT, TRACE_ID, TYPED_RESTAURANT, TYPED_REVIEW, TYPED_SEARCH, TYPED_USER,
    visit,
};
use crate::helpers::azure_rig::AzureRig;
use crate::helpers::fake_identity::{FakeIdentity, claims};
use crate::helpers::process::{AppProcess, browser, get_health, post_review_form};

const MONITOR_RESOURCE: &str = "https://monitor.azure.com/";

fn telemetry_settings(ingestion: &FakeIngestion, client_id: &str) -> Vec<(String, String)> {
    let mut vars = vec![
        (
            "APPLICATIONINSIGHTS_CONNECTION_STRING".to_owned(),
            ingestion.connection_string(),
        ),
        (
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING".to_owned(),
            format!("Authorization=AAD;ClientId={client_id}"),
        ),
        ("TELEMETRY_CA_CERT_FILE".to_owned(), ingestion.ca_file()),
    ];
    vars.extend(
        QUICK_EXPORT
            .iter()
            .chain(&EVERY_TRACE)
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    vars
}

fn borrowed(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_view_arrives_as_requests_and_dependencies_under_one_operation_without_typed_text_or_secrets()
 {
    let Some(mut rig) = AzureRig::start(Duration::from_secs(3600)).await else {
        return;
    };
    let ingestion = FakeIngestion::start().await;
    let vars = telemetry_settings(&ingestion, rig.identity.client_id());
    let mut app = rig.start_app_with(&borrowed(&vars));
    assert!(app.wait_healthy().await, "{}", app.output());
    let page = visit(&browser(), &app).await;

    // The page view continues the caller's trace and is named by its route template.
    let view = ingestion
        .wait_for("GET /{id}/ with the caller's trace", |e| {
            kind(e) == "Request" && name(e) == "GET /{id}/" && operation_id(e) == TRACE_ID
        })
        .await;
    assert_eq!(base_data(&view)["responseCode"], "200");
    assert_eq!(
        view["tags"]["ai.operation.parentId"], "00f067aa0ba902b7",
        "the caller's span is the parent"
    );
    let view_deps = wait_dependencies(&ingestion, TRACE_ID, |d| d["type"] == "postgresql").await;
    assert!(!view_deps.is_empty());

    // The review: its statements, its Blob calls and its photo processing, one operation.
    let post = ingestion
        .wait_for("POST /review/{id}", |e| {
            kind(e) == "Request" && name(e) == "POST /review/{id}"
        })
        .await;
    let operation = operation_id(&post).to_owned();
    let blob = wait_dependencies(&ingestion, &operation, |d| {
        d["type"] == "HTTP" && d["data"].as_str().unwrap_or_default().contains("/photos/")
    })
    .await;
    for call in &blob {
        let url = call["data"].as_str().unwrap();
        assert!(
            !url.contains('?'),
            "a Blob URL with its query string: {url}"
        );
    }
    wait_dependencies(&ingestion, &operation, |d| d["type"] == "postgresql").await;
    wait_dependencies(&ingestion, &operation, |d| {
        d["type"] == "InProc" && d["name"] == "photo.process"
    })
    .await;

    // Route templates only: the restaurant's own path is in no request's name.
    let names: Vec<String> = ingestion
        .envelopes()
        .iter()
        .filter(|e| kind(e) == "Request")
        .map(|e| name(e).to_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(page.as_str())),
        "{names:?}"
    );

    // A failure: Blob Storage down, the review refused with 503; its cause chain arrives as
    // an exception of that request's operation.
    rig.azurite.stop();
    let client = browser();
    let refused = post_review_form(&client, &app, &page, |form| {
        form.text("user_name", TYPED_USER)
            .text("rating", "2")
            .text("review_text", TYPED_REVIEW)
            .part(
                "reviewImage",
                crate::helpers::photo_part(
                    crate::helpers::PHONE_PHOTO,
                    "IMG_0043.JPG",
                    "image/jpeg",
                ),
            )
    })
    .await;
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let failed = ingestion
        .wait_for("the refused review", |e| {
            kind(e) == "Request" && base_data(e)["responseCode"] == "503"
        })
        .await;
    assert_eq!(base_data(&failed)["success"], false);
    let exception = ingestion
        .wait_for("its exception", |e| {
            kind(e) == "Exception" && operation_id(e) == operation_id(&failed)
        })
        .await;
    let thrown = &exception["data"]["baseData"]["exceptions"][0];
    assert_eq!(thrown["typeName"], "StoreError", "{exception}");
    assert!(
        thrown["message"].as_str().unwrap().contains("photo"),
        "{exception}"
    );

    // Metrics: request durations by route, and the PostgreSQL pool.
    let metric = |wanted: &'static str| {
        move |e: &Value| {
            kind(e) == "Metric" && e["data"]["baseData"]["metrics"][0]["name"] == wanted
        }
    };
    ingestion
        .wait_for("request durations", metric("http.server.request.duration"))
        .await;
    ingestion
        .wait_for("pool connections", metric("db.client.connection.count"))
        .await;

    // Nothing typed, no secret: not the identity header, no token, no SAS signature.
    let sent = ingestion.bodies().join("\n");
    let mut secrets = vec![rig.identity.header_secret().to_owned()];
    secrets.extend(rig.identity.tokens());
    for typed in [TYPED_RESTAURANT, TYPED_USER, TYPED_REVIEW, TYPED_SEARCH] {
        // Folded (lower case) too: searches and sort keys are stored folded.
        let folded = sent.to_lowercase();
        assert!(
            !folded.contains(&typed.to_lowercase()),
            "typed text {typed:?} was exported"
        );
    }
    for secret in secrets {
        assert!(!sent.contains(&secret), "a secret was exported");
    }
    assert!(!sent.contains("sig="), "a SAS signature was exported");
    assert_eq!(
        ingestion.unauthorized(),
        0,
        "every upload carried a valid token"
    );
    let token = &ingestion.tokens()[0];
    assert_eq!(claims(token)["aud"], MONITOR_RESOURCE);
}

/// Dependencies of `operation` that satisfy `wanted`, waiting (up to 20 s) for at least one.
async fn wait_dependencies(
    ingestion: &FakeIngestion,
    operation: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    for _ in 0..200 {
        let found: Vec<Value> = ingestion
            .envelopes()
            .iter()
            .filter(|e| kind(e) == "RemoteDependency" && operation_id(e) == operation)
            .map(|e| base_data(e).clone())
            .filter(|d| wanted(d))
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen: Vec<(String, String)> = ingestion
        .envelopes()
        .iter()
        .filter(|e| kind(e) == "RemoteDependency")
        .map(|e| (base_data(e)["type"].to_string(), name(e).to_owned()))
        .collect();
    panic!("no such dependency of {operation}; seen {seen:?}");
}

/// A short-lived token: telemetry keeps flowing across its expiry with a fresh one from the
/// same refresh-ahead cache, shown by `/health` beside the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_token_is_refreshed_ahead_of_expiry_like_the_others() {
    let identity = FakeIdentity::start(Duration::from_secs(8)).await;
    let ingestion = FakeIngestion::start().await;
    let mut vars = telemetry_settings(&ingestion, identity.client_id());
    vars.extend([
        (
            "IDENTITY_ENDPOINT".to_owned(),
            identity.app_service_url.clone(),
        ),
        (
            "IDENTITY_HEADER".to_owned(),
            identity.header_secret().to_owned(),
        ),
        (
            "AZURE_CLIENT_ID".to_owned(),
            identity.client_id().to_owned(),
        ),
    ]);
    let mut app = AppProcess::start(&borrowed(&vars));
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let distinct = loop {
        client.get(app.url("/")).send().await.unwrap();
        let mut tokens = ingestion.tokens();
        tokens.dedup();
        if tokens.len() >= 2 || std::time::Instant::now() > deadline {
            break tokens.len();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(distinct >= 2, "telemetry went on with a refreshed token");
    assert_eq!(
        ingestion.unauthorized(),
        0,
        "no upload was made with an expired token"
    );
    let health = get_health(&client, &app).await;
    let scopes: Vec<&str> = health["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["scope"].as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"https://monitor.azure.com//.default"),
        "{health}"
    );
    assert_eq!(
        health["telemetry"]["exporting_to"][0],
        "application-insights"
    );
    let output = app.output();
    assert!(!output.contains(identity.header_secret()));
    for token in identity.tokens() {
        assert!(!output.contains(&token), "a token was logged");
    }
}
