//! Application Insights' default sampling, as the Azure Monitor distros do it: however many
//! requests arrive, about 5 traces a second are sent, each standing for the requests it was
//! chosen from (its `sampleRate`), while the request metrics count every request.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::fake_ingestion::{FakeIngestion, kind, name};
use super::{QUICK_EXPORT, exporting_to};
use crate::helpers::fake_identity::FakeIdentity;
use crate::helpers::process::AppProcess;

/// How long the burst lasts: long enough for a dozen or so traces at 5 a second.
const BURST: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_burst_sends_a_few_traces_that_stand_for_all_of_it_and_metrics_count_every_request()
 {
    let identity = FakeIdentity::start(Duration::from_secs(3600)).await;
    let ingestion = FakeIngestion::start().await;
    let settings = exporting_to(&ingestion, &identity);
    let mut vars: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend(QUICK_EXPORT);
    let mut app = AppProcess::start(&vars);
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = reqwest::Client::new();

    let started = Instant::now();
    let mut requests = 0u64;
    while started.elapsed() < BURST {
        let pages = (0..20).map(|_| client.get(app.url("/")).send());
        for page in futures_util::future::join_all(pages).await {
            assert_eq!(page.unwrap().status(), reqwest::StatusCode::OK);
            requests += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();

    // The metrics count all of them (Application Insights' metrics are deltas: summed).
    let mut counted = 0;
    for _ in 0..100 {
        counted = route_count(&ingestion.envelopes());
        if counted >= requests {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(counted, requests, "every request in the metrics");

    // A few traces, each standing for 100 / sampleRate requests.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent: Vec<Value> = ingestion
        .envelopes()
        .into_iter()
        .filter(|e| kind(e) == "Request" && name(e) == "GET /")
        .collect();
    // About 5 a second; twice that and a few more, so that chance alone cannot fail the test.
    let allowed = (10.0 * seconds).ceil() as usize + 10;
    assert!(
        !sent.is_empty() && sent.len() <= allowed,
        "{} of {requests} requests sent in {seconds:.1} s (at most {allowed})",
        sent.len()
    );
    let stood_for: f64 = sent
        .iter()
        .map(|e| 100.0 / e["sampleRate"].as_f64().expect("a sampleRate"))
        .sum();
    println!(
        "{requests} requests in {seconds:.1} s: {} traces sent, standing for {stood_for} requests",
        sent.len()
    );
    assert!(
        (requests as f64 / 5.0..requests as f64 * 5.0).contains(&stood_for),
        "{} traces stand for {stood_for} requests, of {requests}",
        sent.len()
    );
    // Their statements carry the same rate as their request.
    for request in &sent {
        let operation = request["tags"]["ai.operation.id"].as_str().unwrap();
        for dependency in ingestion
            .envelopes()
            .iter()
            .filter(|e| kind(e) == "RemoteDependency" && e["tags"]["ai.operation.id"] == operation)
        {
            assert_eq!(
                dependency["sampleRate"], request["sampleRate"],
                "{dependency}"
            );
        }
    }
}

/// `GET /` requests counted by the request duration metric so far.
fn route_count(envelopes: &[Value]) -> u64 {
    envelopes
        .iter()
        .filter(|e| kind(e) == "Metric")
        .filter(|e| e["data"]["baseData"]["metrics"][0]["name"] == "http.server.request.duration")
        .filter(|e| e["data"]["baseData"]["properties"]["http.route"] == "/")
        .map(|e| {
            e["data"]["baseData"]["metrics"][0]["count"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}
