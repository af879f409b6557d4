//! Who is a moderator, from the request:
//!
//! - On App Service with its authentication on (`WEBSITE_AUTH_ENABLED=True`), the platform's
//!   `X-MS-CLIENT-PRINCIPAL` header (base64 JSON with the principal's claims) names the signed-in
//!   user; a moderator is listed in `MODERATORS` by object id or has the `Moderator` app role.
//!   Without that setting the headers are ignored: a client could have sent them.
//! - Locally (listening on loopback only), a session opened by the one-time sign-in link
//!   printed at startup (`moderation::sign_in`).
//!
//! Written by hand: the principal header is App Service's own format, which no crate reads.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::AppState;
use super::error::AppError;
use super::security::cookies_named;
use crate::config::{MODERATOR_ROLE, ModerationSettings};
use crate::db::{Database, DbError};
use crate::moderation::{Actor, sign_in};

/// The cookie of a local moderator session.
pub const SESSION_COOKIE: &str = "moderator_session";
const PRINCIPAL: &str = "x-ms-client-principal";
const PRINCIPAL_ID: &str = "x-ms-client-principal-id";
const PRINCIPAL_NAME: &str = "x-ms-client-principal-name";
const OBJECT_ID_CLAIMS: [&str; 2] = [
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
];

/// How moderators are recognised on this instance.
#[derive(Debug, Clone, Default)]
pub struct ModeratorAccess {
    pub settings: Arc<ModerationSettings>,
    /// The app listens on loopback only, so local sign-in links and their sessions count.
    pub local_sign_in: bool,
}

/// Who sent the request, as far as moderation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visitor {
    Moderator(Actor),
    /// Signed in through App Service, but not a moderator.
    SignedIn(String),
    Anonymous,
}

#[derive(Deserialize)]
struct ClientPrincipal {
    #[serde(default)]
    claims: Vec<Claim>,
    name_typ: Option<String>,
    role_typ: Option<String>,
}

#[derive(Deserialize)]
struct Claim {
    typ: String,
    val: String,
}

/// A principal's object id, display name and roles, from the platform's headers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Principal {
    object_id: Option<String>,
    name: Option<String>,
    roles: Vec<String>,
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn principal(headers: &HeaderMap) -> Option<Principal> {
    let mut principal = Principal::default();
    if let Some(encoded) = header_text(headers, PRINCIPAL) {
        let json = STANDARD.decode(encoded).ok()?;
        let parsed: ClientPrincipal = serde_json::from_slice(&json).ok()?;
        let role_typ = parsed.role_typ.as_deref().unwrap_or("roles");
        let name_typ = parsed.name_typ.as_deref().unwrap_or("name");
        for claim in parsed.claims {
            if OBJECT_ID_CLAIMS.contains(&claim.typ.as_str()) {
                principal.object_id = Some(claim.val);
            } else if claim.typ == role_typ || claim.typ == "roles" {
                principal.roles.push(claim.val);
            } else if claim.typ == name_typ && principal.name.is_none() {
                principal.name = Some(claim.val);
            }
        }
    }
    principal.object_id = principal
        .object_id
        .or_else(|| header_text(headers, PRINCIPAL_ID).map(str::to_owned));
    principal.name = principal
        .name
        .or_else(|| header_text(headers, PRINCIPAL_NAME).map(str::to_owned));
    (principal.object_id.is_some() || principal.name.is_some()).then_some(principal)
}

/// The local session's token, if the request carries one.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookies_named(headers, SESSION_COOKIE)
        .next()
        .map(|c| c.value().to_owned())
}

impl ModeratorAccess {
    pub fn new(settings: ModerationSettings, local_sign_in: bool) -> Self {
        Self {
            settings: Arc::new(settings),
            local_sign_in,
        }
    }

    /// Who the request comes from.
    pub async fn identify(&self, db: &Database, headers: &HeaderMap) -> Result<Visitor, DbError> {
        if self.settings.easy_auth
            && let Some(principal) = principal(headers)
        {
            let object_id = principal.object_id.as_deref().map(str::to_ascii_lowercase);
            let listed = object_id
                .as_ref()
                .is_some_and(|id| self.settings.moderators.contains(id));
            let has_role = principal.roles.iter().any(|r| r == MODERATOR_ROLE);
            let name = principal.name.clone().unwrap_or_else(|| "(no name)".into());
            if listed || has_role {
                let id = object_id.unwrap_or_else(|| "no object id".into());
                return Ok(Visitor::Moderator(Actor(format!("{name} (oid {id})"))));
            }
            return Ok(Visitor::SignedIn(name));
        }
        if self.local_sign_in
            && let Some(token) = session_token(headers)
            && sign_in::session_valid(db, &token).await?
        {
            return Ok(Visitor::Moderator(Actor(
                "local sign-in (the person at the machine)".into(),
            )));
        }
        Ok(Visitor::Anonymous)
    }
}

/// A handler argument that only a moderator's request gets; everyone else gets the refusal:
/// to App Service's sign-in page when that is on and nobody is signed in, else a 403.
pub struct Moderator(pub Actor);

impl FromRequestParts<AppState> for Moderator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let visitor = app
            .moderators
            .identify(&app.db, &parts.headers)
            .await
            .map_err(|e| AppError::from(e).into_response())?;
        match visitor {
            Visitor::Moderator(actor) => Ok(Moderator(actor)),
            Visitor::SignedIn(name) => {
                tracing::warn!(%name, "a signed-in user who is not a moderator was refused");
                Err(AppError::Forbidden(format!(
                    "You are signed in as {name}, who is not a moderator of this site. Ask an administrator to add you (deploy/azure.sh up --moderator …)."
                ))
                .into_response())
            }
            Visitor::Anonymous if app.moderators.settings.easy_auth && parts.method == axum::http::Method::GET => {
                let back: String = url::form_urlencoded::byte_serialize(parts.uri.path().as_bytes()).collect();
                Err(Redirect::to(&format!("/.auth/login/aad?post_login_redirect_uri={back}")).into_response())
            }
            Visitor::Anonymous => Err(AppError::Forbidden(
                "Moderators only. Sign in with the link the app printed when it started (or run `restaurant-review moderate sign-in-link`); on Azure, sign in with Microsoft Entra ID."
                    .into(),
            )
            .into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn encoded(json: &str) -> HeaderValue {
        HeaderValue::from_str(&STANDARD.encode(json)).unwrap()
    }

    #[test]
    fn the_principal_header_gives_object_id_name_and_roles() {
        let mut headers = HeaderMap::new();
        headers.insert(
            PRINCIPAL,
            encoded(
                r#"{"auth_typ":"aad","name_typ":"name","role_typ":"roles","claims":[
                {"typ":"http://schemas.microsoft.com/identity/claims/objectidentifier","val":"6F1C1D2E-4E0B-4F55-9D3B-0B2F1C3E4A5B"},
                {"typ":"name","val":"Ada"},{"typ":"roles","val":"Moderator"}]}"#,
            ),
        );
        let p = principal(&headers).unwrap();
        assert_eq!(
            p.object_id.as_deref(),
            Some("6F1C1D2E-4E0B-4F55-9D3B-0B2F1C3E4A5B")
        );
        assert_eq!(p.name.as_deref(), Some("Ada"));
        assert_eq!(p.roles, ["Moderator"]);
    }

    #[test]
    fn an_unreadable_principal_header_is_nobody() {
        for bad in ["not base64!", "bm90IGpzb24="] {
            let mut headers = HeaderMap::new();
            headers.insert(PRINCIPAL, HeaderValue::from_static(bad));
            assert_eq!(principal(&headers), None, "{bad}");
        }
    }
}
