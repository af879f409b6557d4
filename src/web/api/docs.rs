//! `/api/docs`: the API reference, rendered on the server from the generated OpenAPI document
//! with the site's own layout and styles. No script (the site's CSP allows no inline script
//! and no CDN), so it works as any other page, on a phone and by keyboard.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::document;
use crate::web::routes::html;

pub struct ParameterView {
    pub name: String,
    pub location: String,
    pub required: bool,
    pub description: String,
}

pub struct OperationView {
    pub anchor: String,
    pub method: String,
    pub path: String,
    pub summary: String,
    pub description: String,
    pub parameters: Vec<ParameterView>,
    /// (media type, schema as JSON)
    pub bodies: Vec<(String, String)>,
    /// (status, description)
    pub responses: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "api_docs.html")]
struct DocsPage {
    title: String,
    version: String,
    description: String,
    operations: Vec<OperationView>,
    /// (name, schema as JSON)
    schemas: Vec<(String, String)>,
    problems: [(&'static str, &'static str); 13],
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The document's operations in document order (paths, then methods).
pub fn operations(document: &Value) -> Vec<OperationView> {
    let mut views = Vec::new();
    let Some(paths) = document.get("paths").and_then(Value::as_object) else {
        return views;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, operation) in item {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let parameters = operation
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| ParameterView {
                    name: text(p, "name"),
                    location: text(p, "in"),
                    required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                    description: text(p, "description"),
                })
                .collect();
            let bodies = operation
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(media, content)| {
                    (
                        media.clone(),
                        pretty(content.get("schema").unwrap_or(&Value::Null)),
                    )
                })
                .collect();
            let responses = operation
                .get("responses")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(status, response)| (status.clone(), text(response, "description")))
                .collect();
            let anchor = format!(
                "{method}-{}",
                path.trim_matches('/').replace(['/', '{', '}'], "-")
            );
            views.push(OperationView {
                anchor,
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(operation, "summary"),
                description: text(operation, "description"),
                parameters,
                bodies,
                responses,
            });
        }
    }
    views
}

pub async fn page() -> Response {
    let json = serde_json::to_value(document()).unwrap_or_default();
    let schemas = json
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, schema)| (name.clone(), pretty(schema)))
        .collect();
    let page = DocsPage {
        title: text(&json["info"], "title"),
        version: text(&json["info"], "version"),
        description: text(&json["info"], "description"),
        operations: operations(&json),
        schemas,
        problems: [
            (
                "bad-request",
                "The request could not be read: a query parameter, or a body that is not the JSON or form expected (400).",
            ),
            ("forbidden", "Refused (403)."),
            (
                "cross-site",
                "A browser sent a write from another site with this site's cookies (403). Call the API without credentials.",
            ),
            ("not-found", "No such restaurant or review (404)."),
            (
                "no-such-resource",
                "The API has no resource at that address (404).",
            ),
            (
                "method-not-allowed",
                "The resource does not take that method (405).",
            ),
            ("not-acceptable", "The request accepts no JSON (406)."),
            (
                "likely-duplicate",
                "A restaurant with the same name and address is listed; `candidates` links it. Send `confirm_duplicate: true` to add it anyway (409).",
            ),
            (
                "too-large",
                "The body or the photo is over the limit (413).",
            ),
            (
                "unsupported-media-type",
                "The body is not declared as a type the operation takes (415).",
            ),
            (
                "invalid",
                "Fields are not valid; `errors` has a message per field name (422).",
            ),
            (
                "too-many-posts",
                "This client posts faster than allowed; wait `Retry-After` seconds (429).",
            ),
            (
                "unavailable",
                "The database or photo storage cannot be reached; nothing was saved. Try again after `Retry-After` seconds (503).",
            ),
        ],
    };
    match html(StatusCode::OK, &page) {
        Ok(mut response) => {
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            response
        }
        Err(error) => error.into_response(),
    }
}
