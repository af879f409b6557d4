//! The credential, a token for each scope the app needs, and the clock against the tokens.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use super::fixes::AzureContext;
use super::{Check, Report};
use crate::config::{DatabaseSettings, MONITOR_SCOPE, PhotoSettings, Settings};
use crate::db::POSTGRES_SCOPE;
use crate::identity::{self, CredentialKind, TokenError, TokenSource};
use crate::photos::azure::STORAGE_SCOPE;

/// The doctor waits less than the app's startup does: a person is reading.
const TOKEN_PATIENCE: Duration = Duration::from_secs(15);
/// More clock difference than this breaks token validation (Entra allows 5 minutes).
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// What a token says about itself. Read without verifying the signature: the doctor only
/// describes the token, the services it is for check it.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    pub oid: Option<String>,
    pub tid: Option<String>,
    pub aud: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
}

impl Claims {
    pub fn of(jwt: &str) -> Option<Self> {
        let payload = jwt.split('.').nth(1)?;
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?)
                .ok()?;
        let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            oid: text("oid"),
            tid: text("tid"),
            aud: text("aud"),
            iat: json.get("iat").and_then(serde_json::Value::as_i64),
            exp: json.get("exp").and_then(serde_json::Value::as_i64),
        })
    }
}

/// The token sources that worked, for the checks that need them.
#[derive(Default)]
pub struct Tokens {
    pub postgres: Option<TokenSource>,
    pub storage: Option<TokenSource>,
    pub storage_oid: Option<String>,
    /// Application Insights' (Azure Monitor ingestion), and the identity's object id.
    pub monitor: Option<TokenSource>,
    pub monitor_oid: Option<String>,
    claims: Vec<Claims>,
}

impl Tokens {
    pub fn first_claims(&self) -> Option<&Claims> {
        self.claims.first()
    }
}

/// The scopes this configuration needs tokens for.
fn scopes(settings: &Settings) -> Vec<&'static str> {
    let mut scopes = Vec::new();
    if matches!(&settings.database, DatabaseSettings::Postgres(pg) if pg.uses_entra_token()) {
        scopes.push(POSTGRES_SCOPE);
    }
    if matches!(settings.photos, PhotoSettings::AzureBlob(_)) {
        scopes.push(STORAGE_SCOPE);
    }
    if settings.telemetry.app_insights.is_some() {
        scopes.push(MONITOR_SCOPE);
    }
    scopes
}

/// Which credential, and a token for each scope.
pub async fn check_identity(
    settings: &Settings,
    context: &AzureContext,
    report: &mut Report,
) -> Tokens {
    let mut tokens = Tokens::default();
    let scopes = scopes(settings);
    if scopes.is_empty() {
        report.push(Check::pass(
            "credential",
            "none needed: no Azure service is configured",
        ));
        return tokens;
    }
    let selected = match identity::select(&settings.azure.vars) {
        Ok(selected) => selected,
        Err(error) => {
            report.push(Check::fail(
                "credential",
                crate::error_chain(&error),
                Some(context.no_identity()),
            ));
            for scope in scopes {
                report.push(Check::skip(format!("token {scope}"), "no credential"));
            }
            return tokens;
        }
    };
    report.push(Check::pass("credential", selected.to_string()));
    let mut last_fix = None;
    for scope in scopes {
        let source = TokenSource::new(selected.credential.clone(), selected.label(), scope);
        let name = format!("token {scope}");
        match source.first_token(TOKEN_PATIENCE).await {
            Ok(token) => {
                let claims = Claims::of(token.secret()).unwrap_or_default();
                report.push(describe_token(&name, scope, &claims, token.expires_on));
                if scope == STORAGE_SCOPE {
                    tokens.storage_oid = claims.oid.clone();
                    tokens.storage = Some(source);
                } else if scope == MONITOR_SCOPE {
                    tokens.monitor_oid = claims.oid.clone();
                    tokens.monitor = Some(source);
                } else {
                    tokens.postgres = Some(source);
                }
                tokens.claims.push(claims);
            }
            Err(error) => {
                let fix = match (&error, &selected.client_id) {
                    (TokenError::Rejected { .. }, Some(client_id))
                        if is_managed_identity(selected.kind) =>
                    {
                        Some(context.wrong_client_id(client_id))
                    }
                    (TokenError::Rejected { .. }, None) if is_managed_identity(selected.kind) => {
                        Some(context.no_identity())
                    }
                    _ => None,
                };
                // The same refusal for the next scope needs no second copy of the fix.
                let repeated = fix.is_some() && fix == last_fix;
                last_fix.clone_from(&fix);
                let detail = if repeated {
                    format!("{error} (the fix above applies)")
                } else {
                    error.to_string()
                };
                report.push(Check::fail(name, detail, fix.filter(|_| !repeated)));
            }
        }
    }
    tokens
}

fn is_managed_identity(kind: CredentialKind) -> bool {
    matches!(
        kind,
        CredentialKind::AppServiceManagedIdentity | CredentialKind::VmManagedIdentity
    )
}

/// A token's line: who it is for and until when, never the token. A token for another audience
/// would be refused by the service, so that is a failure.
fn describe_token(name: &str, scope: &str, claims: &Claims, expires_on: OffsetDateTime) -> Check {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    let minutes = (expires_on - OffsetDateTime::now_utc()).whole_minutes();
    let detail = format!(
        "oid {} tid {} aud {} exp {} (in {minutes} min)",
        shown(&claims.oid),
        shown(&claims.tid),
        shown(&claims.aud),
        expires_on
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    );
    let resource = scope.trim_end_matches("/.default");
    let audience_ok = claims.aud.as_deref().is_none_or(|aud| {
        aud.trim_end_matches('/') == resource.trim_end_matches('/')
            || (scope == STORAGE_SCOPE && aud.ends_with(".core.windows.net"))
    });
    if audience_ok {
        Check::pass(name, detail)
    } else {
        Check::fail(
            name,
            format!("{detail}: the audience is not {resource}, so the service will refuse it"),
            None,
        )
    }
}

/// Compares this machine's clock with the token's issue and expiry times. Tokens may come from
/// a cache (App Service keeps them for hours), so an old `iat` is normal; an `iat` in the future
/// or a fresh token that already looks expired means this clock is wrong.
pub fn check_clock(claims: &Claims) -> Check {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let skew = MAX_SKEW.as_secs() as i64;
    match (claims.iat, claims.exp) {
        (Some(iat), _) if iat - now > skew => Check::fail(
            "clock",
            format!(
                "this machine's clock is {} s behind the token issuer's",
                iat - now
            ),
            Some("synchronise the system clock (NTP)".into()),
        ),
        (_, Some(exp)) if exp < now => Check::fail(
            "clock",
            format!(
                "a token just issued expired {} s ago by this machine's clock, which is ahead",
                now - exp
            ),
            Some("synchronise the system clock (NTP)".into()),
        ),
        (Some(iat), _) => Check::pass(
            "clock",
            format!(
                "token issued {} s ago by this clock; no skew beyond {} min",
                now - iat,
                skew / 60
            ),
        ),
        _ => Check::pass("clock", "the token carries no iat to compare with"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        format!(
            "e30.{}.c2ln",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        )
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let claims = Claims::of(&jwt(serde_json::json!({
            "oid": "o", "tid": "t", "aud": "https://storage.azure.com", "iat": 10, "exp": 20
        })))
        .unwrap();
        assert_eq!(claims.oid.as_deref(), Some("o"));
        assert_eq!((claims.iat, claims.exp), (Some(10), Some(20)));
        assert!(Claims::of("not a token").is_none());
    }

    #[test]
    fn a_clock_behind_the_issuer_is_a_failure() {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let ahead = Claims {
            iat: Some(now + 3600),
            exp: Some(now + 7200),
            ..Claims::default()
        };
        assert!(!check_clock(&ahead).passed());
        let cached = Claims {
            iat: Some(now - 6 * 3600),
            exp: Some(now + 3600),
            ..Claims::default()
        };
        assert!(check_clock(&cached).passed());
    }
}
