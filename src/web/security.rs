//! Request-level protections: the Host allowlist, CSRF (Origin check plus a double-submit token)
//! and the security headers every response carries.
//!
//! The CSRF token lives in a cookie and in each form, so any instance behind App Service's load
//! balancer can verify it without shared state.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;
use tower_http::csrf::{CsrfLayer, ProtectionError};

use super::error::error_page;

/// Django's names, so the forms look familiar to anyone coming from the sample.
pub const CSRF_COOKIE: &str = "csrftoken";
pub const CSRF_FIELD: &str = "csrfmiddlewaretoken";
const TOKEN_BYTES: usize = 32;

/// The request's CSRF token, for rendering into forms and checking submitted ones.
#[derive(Clone)]
pub struct CsrfToken(String);

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

impl CsrfToken {
    fn generate() -> Self {
        Self(URL_SAFE_NO_PAD.encode(rand::random::<[u8; TOKEN_BYTES]>()))
    }

    fn from_cookie(value: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(value).ok()?;
        (decoded.len() == TOKEN_BYTES).then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with the token a form submitted.
    pub fn matches(&self, submitted: &str) -> bool {
        self.0.as_bytes().ct_eq(submitted.as_bytes()).into()
    }
}

/// Every host the request names, lowercased: each `Host` line and the target's authority
/// (absolute-form in HTTP/1, `:authority` in HTTP/2). A value that is not text counts as a
/// host that is not allowed.
fn named_hosts(request: &Request) -> Vec<String> {
    let lines = request
        .headers()
        .get_all(header::HOST)
        .iter()
        .map(|h| h.to_str().unwrap_or_default().to_ascii_lowercase());
    let authority = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_ascii_lowercase());
    lines.chain(authority).collect()
}

fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: "[::1]:8000"
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Django's rules: an exact name, or `.example.com` for the domain and all its subdomains.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = without_port(host);
    allowed
        .iter()
        .any(|pattern| match pattern.strip_prefix('.') {
            Some(domain) => host == domain || host.ends_with(pattern.as_str()),
            None => host == without_port(pattern),
        })
}

/// Refuses requests for hosts not in `WEBSITE_HOSTNAME`/`ALLOWED_HOSTS` when those are set.
/// `/health` is exempt: App Service probes instances by address.
pub async fn enforce_allowed_hosts(
    State(allowed): State<Arc<Option<Vec<String>>>>,
    request: Request,
    next: Next,
) -> Response {
    // RFC 9112 §3.2: a request with more than one Host line is answered 400, whatever they say.
    if request.headers().get_all(header::HOST).iter().count() > 1 {
        tracing::warn!("request with more than one Host line");
        return error_page(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The request names more than one host.",
        );
    }
    if let Some(allowed) = allowed.as_ref() {
        let hosts = named_hosts(&request);
        let ok = request.uri().path() == "/health"
            || (!hosts.is_empty() && hosts.iter().all(|h| host_allowed(h, allowed)));
        if !ok {
            tracing::warn!(?hosts, "request for a host that is not allowed");
            return error_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "This site is not served under that host name.",
            );
        }
    }
    next.run(request).await
}

pub(super) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The request's cookies called `name`, in the order the browser sent them (unreadable
/// headers and malformed cookies skipped).
pub(crate) fn cookies_named<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = Cookie<'a>> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(move |c| c.name() == name)
}

/// Makes a [`CsrfToken`] available to handlers, issuing a cookie when the browser has none.
/// Handlers compare the form's token with it; cross-origin requests were already refused by
/// [`cross_origin_layer`].
pub async fn csrf_token(mut request: Request, next: Next) -> Response {
    // The JSON API takes no cookies and sets none (see web::api::http).
    if is_api(request.uri().path()) {
        return next.run(request).await;
    }
    let existing = cookies_named(request.headers(), CSRF_COOKIE)
        .next()
        .and_then(|c| CsrfToken::from_cookie(c.value()));
    let issue_cookie = existing.is_none();
    let token = existing.unwrap_or_else(CsrfToken::generate);
    let secure = is_https(request.headers());
    request.extensions_mut().insert(token.clone());
    let mut response = next.run(request).await;

    if issue_cookie {
        let cookie = Cookie::build((CSRF_COOKIE, token.0))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(cookie::time::Duration::days(365))
            .build();
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Refuses cross-origin unsafe requests using the browser's `Sec-Fetch-Site` and `Origin`
/// headers (tower-http's implementation of the Go 1.25 scheme), with a friendly page.
pub fn cross_origin_layer() -> CsrfLayer<fn(ProtectionError) -> Response> {
    fn refuse(error: ProtectionError) -> Response {
        tracing::warn!(reason = ?error.kind(), "cross-origin request refused");
        error_page(
            StatusCode::FORBIDDEN,
            "Request refused",
            "This form was sent from another site. Open the page on this site and try again.",
        )
    }
    CsrfLayer::new()
        // The API's writes carry no cookies; a browser's cross-site write with the site's
        // cookies is refused there (web::api::http::refuse_cross_site_cookies), and an
        // allowlisted origin may call it through CORS.
        .with_insecure_bypass(|_, uri| is_api(uri.path()))
        .with_rejection_response(refuse as fn(ProtectionError) -> Response)
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The answer to a POST whose form token does not match its cookie.
pub fn csrf_failure() -> Response {
    super::error::AppError::Forbidden(
        "Your session's security token is missing or out of date. Reload the page and submit the form again."
            .to_owned(),
    )
    .into_response()
}

/// The Content-Security-Policy on every response: scripts and styles from this site only (no
/// inline script exists anywhere in the templates), images also from a photo origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy with `photo_origin` (a Blob Storage endpoint) allowed for images.
pub fn content_security_policy(photo_origin: Option<&str>) -> String {
    match photo_origin {
        Some(origin) if !origin.contains([';', ' ', '\'', '"', ',']) => CONTENT_SECURITY_POLICY
            .replace(
                "img-src 'self' data:",
                &format!("img-src 'self' data: {origin}"),
            ),
        _ => CONTENT_SECURITY_POLICY.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_leading_dot_domain() {
        let allowed = vec![
            "myapp.azurewebsites.net".to_owned(),
            ".example.org".to_owned(),
        ];
        assert!(host_allowed("myapp.azurewebsites.net", &allowed));
        assert!(host_allowed("myapp.azurewebsites.net:443", &allowed));
        assert!(host_allowed("example.org", &allowed));
        assert!(host_allowed("www.example.org", &allowed));
        assert!(!host_allowed("evil.com", &allowed));
        assert!(!host_allowed("notexample.org", &allowed));
        assert!(!host_allowed("myapp.azurewebsites.net.evil.com", &allowed));
    }

    #[test]
    fn tokens_round_trip_through_the_cookie_and_debug_hides_them() {
        let token = CsrfToken::generate();
        let parsed = CsrfToken::from_cookie(token.as_str()).unwrap();
        assert!(parsed.matches(token.as_str()));
        assert!(!parsed.matches("forged"));
        assert!(CsrfToken::from_cookie("short").is_none());
        assert!(!format!("{token:?}").contains(token.as_str()));
    }
}
