//! Where telemetry goes: Application Insights (`APPLICATIONINSIGHTS_CONNECTION_STRING`, sent
//! with the app's Entra token), any OTLP collector (`OTEL_EXPORTER_OTLP_ENDPOINT` and the usual
//! `OTEL_*` variables), both, or nowhere (the default: nothing is exported and nothing costs).

use std::fmt;
use std::time::Duration;

use super::ConfigError;
use super::env::{Vars, invalid};

/// The scope of Azure Monitor ingestion tokens (the double slash is Azure's).
pub const MONITOR_SCOPE: &str = "https://monitor.azure.com//.default";
const DEFAULT_SERVICE_NAME: &str = "restaurant-review";
/// The OpenTelemetry specification's defaults for the batch span processor.
const DEFAULT_QUEUE: usize = 2048;
const DEFAULT_BATCH: usize = 512;
const DEFAULT_DELAY: Duration = Duration::from_secs(5);
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
pub struct TelemetrySettings {
    pub app_insights: Option<AppInsightsSettings>,
    pub otlp: Option<OtlpSettings>,
    pub service_name: String,
    pub sampler: Sampler,
    pub queue: QueueSettings,
    /// `TELEMETRY_CA_CERT_FILE`: one more trusted root for the ingestion or collector endpoint
    /// (a private collector, or the tests' fake ingestion).
    pub ca_certificate_pem: Option<Vec<u8>>,
}

impl TelemetrySettings {
    pub fn exports(&self) -> bool {
        self.app_insights.is_some() || self.otlp.is_some()
    }
}

/// Application Insights: where to send (from the connection string) and as whom. The
/// instrumentation key only names the resource; the bearer token is what Azure checks.
#[derive(Clone)]
pub struct AppInsightsSettings {
    pub connection_string: String,
    pub ingestion_endpoint: String,
    /// `APPLICATIONINSIGHTS_AUTHENTICATION_STRING`'s `ClientId`, when it names one.
    pub client_id: Option<String>,
}

impl fmt::Debug for AppInsightsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection string is not a secret with local authentication disabled, but it
        // is not needed in a log either: the endpoint says where telemetry goes.
        f.debug_struct("AppInsightsSettings")
            .field("ingestion_endpoint", &self.ingestion_endpoint)
            .field("client_id", &self.client_id)
            .finish()
    }
}

#[derive(Clone)]
pub struct OtlpSettings {
    /// The base endpoint; `/v1/traces`, `/v1/logs` and `/v1/metrics` are added per signal.
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_HEADERS` (often an API key): never shown by `Debug`.
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("headers", &names)
            .finish()
    }
}

/// `OTEL_TRACES_SAMPLER` (and `_ARG`): which traces are recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBased(ParentRoot),
    /// `microsoft.rate_limited`: at most about this many traces a second (the Azure Monitor
    /// distros' default, 5, when Application Insights is the destination).
    RateLimited(f64),
    /// `microsoft.fixed_percentage`: this ratio (0 to 1) of traces, kept or dropped by trace id
    /// like the Azure SDKs.
    FixedPercentage(f64),
}

/// Traces a second kept by default when sending to Application Insights (the Azure Monitor
/// OpenTelemetry distros' default since their 2026 releases).
pub const DEFAULT_TRACES_PER_SECOND: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentRoot {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::ParentBased(ParentRoot::AlwaysOn)
    }
}

/// `OTEL_BSP_*`: the bounded queue between the app and the exporter.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    pub max_queue: usize,
    pub max_batch: usize,
    pub delay: Duration,
    pub export_timeout: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            max_queue: DEFAULT_QUEUE,
            max_batch: DEFAULT_BATCH,
            delay: DEFAULT_DELAY,
            export_timeout: DEFAULT_EXPORT_TIMEOUT,
        }
    }
}

pub(super) fn from_vars(vars: &Vars) -> Result<TelemetrySettings, ConfigError> {
    let mut settings = TelemetrySettings {
        service_name: vars
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned()),
        ..Default::default()
    };
    if vars.get("OTEL_SDK_DISABLED").as_deref() == Some("true") {
        return Ok(settings);
    }
    settings.app_insights = app_insights(vars)?;
    settings.otlp = otlp(vars)?;
    settings.sampler = sampler(vars, settings.app_insights.is_some())?;
    let millis = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(vars
            .parse::<u64>(name)?
            .map(Duration::from_millis)
            .unwrap_or(default))
    };
    settings.queue = QueueSettings {
        max_queue: vars
            .parse("OTEL_BSP_MAX_QUEUE_SIZE")?
            .unwrap_or(DEFAULT_QUEUE)
            .max(1),
        max_batch: vars
            .parse("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")?
            .unwrap_or(DEFAULT_BATCH)
            .max(1),
        delay: millis("OTEL_BSP_SCHEDULE_DELAY", DEFAULT_DELAY)?,
        export_timeout: millis("OTEL_BSP_EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT)?,
    };
    if let Some(path) = vars.get("TELEMETRY_CA_CERT_FILE") {
        let pem = std::fs::read(&path)
            .map_err(|e| invalid("TELEMETRY_CA_CERT_FILE", format!("{path}: {e}")))?;
        settings.ca_certificate_pem = Some(pem);
    }
    Ok(settings)
}

fn app_insights(vars: &Vars) -> Result<Option<AppInsightsSettings>, ConfigError> {
    const NAME: &str = "APPLICATIONINSIGHTS_CONNECTION_STRING";
    let Some(connection_string) = vars.get(NAME) else {
        return Ok(None);
    };
    let parts = key_values(&connection_string);
    let part = |key: &str| {
        parts
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if part("InstrumentationKey").is_none() {
        return Err(invalid(NAME, "it has no InstrumentationKey"));
    }
    let ingestion_endpoint = part("IngestionEndpoint")
        .unwrap_or_else(|| "https://dc.services.visualstudio.com/".to_owned());
    match url::Url::parse(&ingestion_endpoint) {
        Ok(url) if url.scheme() == "https" => {}
        _ => {
            return Err(invalid(
                NAME,
                "its IngestionEndpoint is not an https:// URL",
            ));
        }
    }
    let client_id = match vars.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") {
        None => None,
        Some(text) => {
            let auth = key_values(&text);
            let aad = auth.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("Authorization") && v.eq_ignore_ascii_case("AAD")
            });
            if !aad {
                return Err(invalid(
                    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                    "only Authorization=AAD (with an optional ClientId=<client id>) is supported",
                ));
            }
            auth.into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("ClientId"))
                .map(|(_, v)| v)
        }
    };
    if let (Some(named), Some(app)) = (&client_id, vars.get("AZURE_CLIENT_ID"))
        && !named.eq_ignore_ascii_case(&app)
    {
        return Err(invalid(
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            format!(
                "its ClientId {named} is not AZURE_CLIENT_ID ({app}): the app signs in to every Azure service with one identity"
            ),
        ));
    }
    Ok(Some(AppInsightsSettings {
        connection_string,
        ingestion_endpoint,
        client_id,
    }))
}

fn otlp(vars: &Vars) -> Result<Option<OtlpSettings>, ConfigError> {
    let Some(endpoint) = vars.get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
        return Ok(None);
    };
    match vars.get("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        None | Some("http/protobuf") => {}
        Some(other) => {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                format!(
                    "{other:?} is not supported: use http/protobuf (the default; Jaeger, the Aspire dashboard and the Collector all take it on port 4318)"
                ),
            ));
        }
    }
    match url::Url::parse(&endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => {
            return Err(invalid(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "not an http:// or https:// URL",
            ));
        }
    }
    let headers = vars
        .get("OTEL_EXPORTER_OTLP_HEADERS")
        .map(|text| {
            text.split(',')
                .filter(|pair| !pair.trim().is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').ok_or_else(|| {
                        invalid("OTEL_EXPORTER_OTLP_HEADERS", "expected key=value pairs")
                    })?;
                    let v = percent_encoding::percent_decode_str(v.trim()).decode_utf8_lossy();
                    Ok((k.trim().to_owned(), v.into_owned()))
                })
                .collect::<Result<Vec<_>, ConfigError>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Some(OtlpSettings {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        headers,
    }))
}

fn sampler(vars: &Vars, to_app_insights: bool) -> Result<Sampler, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        let ratio: f64 = vars.parse("OTEL_TRACES_SAMPLER_ARG")?.unwrap_or(1.0);
        if (0.0..=1.0).contains(&ratio) {
            Ok(ratio)
        } else {
            Err(invalid("OTEL_TRACES_SAMPLER_ARG", "a ratio from 0 to 1"))
        }
    };
    let per_second = || -> Result<f64, ConfigError> {
        let rate: f64 = vars
            .parse("OTEL_TRACES_SAMPLER_ARG")?
            .unwrap_or(DEFAULT_TRACES_PER_SECOND);
        if rate.is_finite() && rate >= 0.0 {
            Ok(rate)
        } else {
            Err(invalid(
                "OTEL_TRACES_SAMPLER_ARG",
                "a number of traces a second, 0 or more",
            ))
        }
    };
    Ok(match vars.get("OTEL_TRACES_SAMPLER").as_deref() {
        None if to_app_insights => Sampler::RateLimited(DEFAULT_TRACES_PER_SECOND),
        None | Some("parentbased_always_on") => Sampler::ParentBased(ParentRoot::AlwaysOn),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::Ratio(ratio()?),
        Some("parentbased_always_off") => Sampler::ParentBased(ParentRoot::AlwaysOff),
        Some("parentbased_traceidratio") => Sampler::ParentBased(ParentRoot::Ratio(ratio()?)),
        Some("microsoft.rate_limited") => Sampler::RateLimited(per_second()?),
        Some("microsoft.fixed_percentage") => Sampler::FixedPercentage(ratio()?),
        Some(other) => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                format!(
                    "{other:?} is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio, microsoft.rate_limited, microsoft.fixed_percentage"
                ),
            ));
        }
    })
}

/// `Key=Value;Key=Value` (connection and authentication strings).
fn key_values(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::env::vars;
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<TelemetrySettings, ConfigError> {
        from_vars(&Vars(&vars(pairs)))
    }

    #[test]
    fn nothing_set_exports_nothing() {
        let s = settings(&[]).unwrap();
        assert!(!s.exports());
        assert_eq!(s.service_name, "restaurant-review");
    }

    #[test]
    fn the_connection_string_and_aad_authentication_string_turn_on_application_insights() {
        let s = settings(&[
            (
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://x/",
            ),
            ("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "Authorization=AAD;ClientId=abc"),
            ("AZURE_CLIENT_ID", "ABC"),
        ])
        .unwrap();
        let ai = s.app_insights.unwrap();
        assert_eq!(
            ai.ingestion_endpoint,
            "https://westeurope-5.in.applicationinsights.azure.com/"
        );
        assert_eq!(ai.client_id.as_deref(), Some("abc"));
        assert_eq!(
            s.sampler,
            Sampler::RateLimited(5.0),
            "Application Insights samples like the Azure Monitor distros: 5 traces a second"
        );
    }

    #[test]
    fn the_azure_monitor_sampler_names_are_understood() {
        let ai = (
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://x/",
        );
        let cases: &[(&[(&str, &str)], Sampler)] = &[
            (
                &[("OTEL_TRACES_SAMPLER", "microsoft.rate_limited")],
                Sampler::RateLimited(5.0),
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "microsoft.rate_limited"),
                    ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
                ],
                Sampler::RateLimited(0.5),
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "microsoft.fixed_percentage"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.0"),
                ],
                Sampler::FixedPercentage(1.0),
            ),
            (&[("OTEL_TRACES_SAMPLER", "always_on")], Sampler::AlwaysOn),
        ];
        for (vars, expected) in cases {
            let mut vars = vars.to_vec();
            vars.push(ai);
            assert_eq!(settings(&vars).unwrap().sampler, *expected, "{vars:?}");
        }
        let otlp_only = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")]);
        assert_eq!(
            otlp_only.unwrap().sampler,
            Sampler::ParentBased(ParentRoot::AlwaysOn),
            "elsewhere the OpenTelemetry specification's default"
        );
    }

    #[test]
    fn bad_telemetry_settings_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[(
                    "APPLICATIONINSIGHTS_CONNECTION_STRING",
                    "IngestionEndpoint=https://x/",
                )],
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
            ),
            (
                &[(
                    "APPLICATIONINSIGHTS_CONNECTION_STRING",
                    "InstrumentationKey=k;IngestionEndpoint=http://x/",
                )],
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
            ),
            (
                &[
                    (
                        "APPLICATIONINSIGHTS_CONNECTION_STRING",
                        "InstrumentationKey=k",
                    ),
                    (
                        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                        "Authorization=Key",
                    ),
                ],
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            ),
            (
                &[
                    (
                        "APPLICATIONINSIGHTS_CONNECTION_STRING",
                        "InstrumentationKey=k",
                    ),
                    (
                        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                        "Authorization=AAD;ClientId=a",
                    ),
                    ("AZURE_CLIENT_ID", "b"),
                ],
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "2"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                &[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
            ),
        ];
        for (pairs, name) in cases {
            let error = settings(pairs).unwrap_err().to_string();
            assert!(error.contains(name), "{pairs:?}: {error}");
        }
    }

    #[test]
    fn otlp_headers_are_parsed_and_never_shown() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-team=web"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        let otlp = s.otlp.unwrap();
        assert_eq!(otlp.endpoint, "http://localhost:4318");
        assert_eq!(otlp.headers[0], ("api-key".into(), "s=cret".into()));
        assert!(!format!("{otlp:?}").contains("cret"));
        assert_eq!(s.sampler, Sampler::ParentBased(ParentRoot::Ratio(0.25)));
    }

    #[test]
    fn otel_sdk_disabled_turns_everything_off() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert!(!s.exports());
    }
}
