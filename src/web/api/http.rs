//! HTTP around the API's resources: content negotiation (406), conditional reads (`ETag`,
//! `If-None-Match`, 304), the cross-site cookie guard on writes, CORS, and the opaque cursor.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::problem::Problem;

/// Whether `Accept` allows JSON (or problem+json). No header, `*/*` and `application/*` do;
/// a client that accepts only HTML or XML does not. Parsed here because it is a few lines and
/// only needs "is JSON acceptable at all" (q=0 means "not acceptable", RFC 9110 §12.4.2).
pub fn accepts_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    values
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            !refused
                && matches!(
                    media.as_str(),
                    "*/*" | "application/*" | "application/json" | "application/problem+json"
                )
        })
}

/// 406 for a request that accepts no JSON (answered in problem+json all the same: it is the
/// only representation there is).
pub async fn negotiate(request: Request, next: Next) -> Response {
    if accepts_json(request.headers()) {
        return next.run(request).await;
    }
    Problem::new(
        StatusCode::NOT_ACCEPTABLE,
        "not-acceptable",
        "Not acceptable",
        "This API answers in JSON only (application/json); send Accept: application/json.",
    )
    .into_response()
}

/// Writes need no cookie and so no CSRF token; a browser's cross-site request that carries
/// this site's cookies is refused, so a page elsewhere cannot post as a visitor. Cross-site is
/// what the browser says in `Sec-Fetch-Site` (anything but `same-origin` or `none`); browsers
/// without it are judged by `Origin` against `Host`. Scripts and apps send neither header and
/// no cookies, and pass.
pub async fn refuse_cross_site_cookies(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method && headers.contains_key(header::COOKIE) && is_cross_site(headers) {
        tracing::warn!("cross-site API write with the site's cookies refused");
        return Problem::new(
            StatusCode::FORBIDDEN,
            "cross-site",
            "Cross-site request refused",
            "A browser sent this write from another site with this site's cookies. Call the API without cookies (credentials: \"omit\").",
        )
        .into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// CORS for the listed origins only; none listed, no CORS headers at all (same-origin only).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::ACCEPT, header::IF_NONE_MATCH])
            .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// A JSON read with an `ETag` (a hash of the body) and `cache_control`; 304 when the
/// request's `If-None-Match` already names it. The tag is weak (`W/`): the response may be
/// sent gzip- or br-compressed, and a strong tag would have to differ per encoding.
pub fn conditional_json<T: Serialize>(
    request_headers: &HeaderMap,
    value: &T,
    cache_control: &'static str,
) -> Response {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "serialising an API response failed");
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side.",
            )
            .into_response();
        }
    };
    let digest = Sha256::digest(&body);
    let opaque = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
    let etag = format!("W/{opaque}");
    let matches = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == opaque || tag == "*");
    let status = if matches {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut response = if matches {
        status.into_response()
    } else {
        (status, body).into_response()
    };
    let headers = response.headers_mut();
    if !matches {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

/// The opaque cursor of the page after the row `id`.
pub fn cursor_after(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("after:{id}"))
}

/// The row a cursor continues after; `None` for anything this API did not hand out.
pub fn parse_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("after:")?
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 1)
}

/// Whether the body is declared as `media` (parameters such as `charset` aside).
pub fn content_type_is(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_acceptable_unless_only_html_or_xml_is() {
        let accepts = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(v) = value {
                headers.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            }
            accepts_json(&headers)
        };
        assert!(accepts(None));
        assert!(accepts(Some("*/*")));
        assert!(accepts(Some("text/html, application/json;q=0.5")));
        assert!(accepts(Some("application/problem+json")));
        assert!(!accepts(Some("text/html")));
        assert!(!accepts(Some("application/xml, text/xml")));
        assert!(!accepts(Some("application/json;q=0")));
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(parse_cursor(&cursor_after(42)), Some(42));
        for foreign in ["42", "", "!!", &URL_SAFE_NO_PAD.encode("after:-1")] {
            assert_eq!(parse_cursor(foreign), None, "{foreign}");
        }
    }
}
