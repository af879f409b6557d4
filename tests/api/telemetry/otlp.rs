//! OTLP anywhere else: the same spans to a collector (Jaeger, Aspire, the Collector) with only
//! the standard `OTEL_*` variables, over http/protobuf.

use std::time::Duration;

use super::otlp_collector::{OtlpCollector, attribute, hex};
use super::{
    QUICK_EXPORT, TRACE_ID, TYPED_RESTAURANT, TYPED_REVIEW, TYPED_SEARCH, TYPED_USER, visit,
};
use crate::helpers::azure_rig::AzureRig;
use crate::helpers::process::browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_receives_the_same_spans_over_otlp_http_protobuf() {
    let Some(rig) = AzureRig::start(Duration::from_secs(3600)).await else {
        return;
    };
    let collector = OtlpCollector::start().await;
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "reviews-under-test"),
    ];
    vars.extend(QUICK_EXPORT);
    let mut app = rig.start_app_with(&vars);
    assert!(app.wait_healthy().await, "{}", app.output());
    visit(&browser(), &app).await;

    let view = collector
        .wait_for("GET /{id}/ with the caller's trace", |s| {
            s.name == "GET /{id}/" && hex(&s.trace_id) == TRACE_ID
        })
        .await;
    assert_eq!(hex(&view.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(attribute(&view, "http.route").as_deref(), Some("/{id}/"));
    assert_eq!(
        attribute(&view, "http.response.status_code").as_deref(),
        Some("200")
    );
    let statement = collector
        .wait_for("a statement of the page view", |s| {
            hex(&s.trace_id) == TRACE_ID
                && attribute(s, "db.system.name").as_deref() == Some("postgresql")
        })
        .await;
    assert!(
        attribute(&statement, "db.query.text")
            .unwrap()
            .contains("$1")
    );

    let post = collector
        .wait_for("POST /review/{id}", |s| s.name == "POST /review/{id}")
        .await;
    collector
        .wait_for("a Blob call of the review", |s| {
            s.trace_id == post.trace_id
                && attribute(s, "url.full").is_some_and(|u| u.contains("/photos/"))
        })
        .await;
    collector
        .wait_for("the photo's processing", |s| {
            s.trace_id == post.trace_id && s.name == "photo.process"
        })
        .await;
    assert!(
        collector
            .content_types()
            .iter()
            .all(|c| c == "application/x-protobuf")
    );
    let everything = format!("{:?}", collector.spans());
    for typed in [
        TYPED_RESTAURANT,
        TYPED_USER,
        TYPED_REVIEW,
        TYPED_SEARCH,
        rig.identity.header_secret(),
    ] {
        let folded = everything.to_lowercase();
        assert!(
            !folded.contains(&typed.to_lowercase()),
            "{typed:?} was exported"
        );
    }
}
