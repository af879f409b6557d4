//! Application Insights: the monitoring token (checked with the other tokens) and one test
//! event sent with it, as the app sends its telemetry.
//!
//! The probe is one envelope posted to `/v2/track` by hand rather than through the exporter:
//! the exporter reports a refusal as an opaque error, and the doctor must see the status (401
//! or 403) and ingestion's own words to name the fix.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::fixes::AzureContext;
use super::{Check, Report};
use crate::config::AppInsightsSettings;
use crate::identity::TokenSource;

const NAME: &str = "application insights";
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// The most of ingestion's answer shown (it is a short JSON summary).
const ANSWER_SHOWN: usize = 300;

pub async fn check_app_insights(
    settings: &AppInsightsSettings,
    ca_certificate_pem: Option<&[u8]>,
    tokens: Option<&TokenSource>,
    oid: Option<&str>,
    context: &AzureContext,
    report: &mut Report,
) {
    let Some(tokens) = tokens else {
        report.skip(&[NAME], "no token for Azure Monitor");
        return;
    };
    let token = match tokens.token().await {
        Ok(token) => token,
        Err(error) => {
            report.push(Check::fail(NAME, error.to_string(), None));
            return;
        }
    };
    let key = settings
        .connection_string
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("InstrumentationKey"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let envelope = json!([{
        "name": "Microsoft.ApplicationInsights.Event",
        "time": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        "iKey": key,
        "tags": { "ai.cloud.role": "restaurant-review doctor" },
        "data": {
            "baseType": "EventData",
            "baseData": { "ver": 2, "name": "restaurant-review doctor test event" }
        }
    }]);
    let url = format!(
        "{}/v2/track",
        settings.ingestion_endpoint.trim_end_matches('/')
    );
    let mut http = reqwest::Client::builder().timeout(PROBE_TIMEOUT);
    if let Some(pem) = ca_certificate_pem
        && let Ok(certificate) = reqwest::Certificate::from_pem(pem)
    {
        http = http.add_root_certificate(certificate);
    }
    let sent = match http.build() {
        Ok(http) => {
            http.post(&url)
                .bearer_auth(token.secret())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(envelope.to_string())
                .send()
                .await
        }
        Err(error) => return report.push_fail(NAME, error.to_string(), None),
    };
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            return report.push_fail(
                NAME,
                format!(
                    "cannot reach {} ({})",
                    settings.ingestion_endpoint,
                    crate::error_chain(&error)
                ),
                Some("check APPLICATIONINSIGHTS_CONNECTION_STRING's IngestionEndpoint and the app's outbound network".into()),
            );
        }
    };
    let status = response.status();
    let answer: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(ANSWER_SHOWN)
        .collect();
    if status.is_success() {
        report.push(Check::pass(
            NAME,
            format!(
                "a test event was accepted by {} with the identity's token",
                settings.ingestion_endpoint
            ),
        ));
    } else if status.as_u16() == 403 || status.as_u16() == 401 {
        report.push_fail(
            NAME,
            format!("the test event was refused with HTTP {status}: {answer}"),
            Some(context.monitoring_role(oid)),
        );
    } else {
        report.push_fail(
            NAME,
            format!("the test event was refused with HTTP {status}: {answer}"),
            None,
        );
    }
}
