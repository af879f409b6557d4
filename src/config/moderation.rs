//! Who may moderate: App Service's built-in authentication (Easy Auth), trusted only when the
//! platform says it is on, and the moderators it lets in.

use super::ConfigError;
use super::env::{Vars, invalid};

/// The app role that makes a signed-in principal a moderator.
pub const MODERATOR_ROLE: &str = "Moderator";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModerationSettings {
    /// `WEBSITE_AUTH_ENABLED=True`: App Service authentication is on, so the platform strips
    /// any `X-MS-CLIENT-PRINCIPAL*` header a client sends and sets its own. Only then are those
    /// headers read; otherwise anyone could send them.
    pub easy_auth: bool,
    /// `MODERATORS`: Microsoft Entra object ids (comma- or space-separated, compared without
    /// case) of the moderators, besides anyone with the `Moderator` app role.
    pub moderators: Vec<String>,
}

pub(super) fn from_vars(vars: &Vars) -> Result<ModerationSettings, ConfigError> {
    // App Service writes "True" (or "False"); anything else is a typo worth naming.
    let easy_auth = match vars.get("WEBSITE_AUTH_ENABLED").as_deref() {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(invalid(
                "WEBSITE_AUTH_ENABLED",
                format!("{other:?} is neither \"True\" nor \"False\""),
            ));
        }
    };
    let mut moderators = Vec::new();
    for id in vars
        .get("MODERATORS")
        .unwrap_or_default()
        .split([',', ' ', ';'])
        .filter(|id| !id.is_empty())
    {
        let parsed = uuid::Uuid::try_parse(id).map_err(|_| {
            invalid(
                "MODERATORS",
                format!(
                    "{id:?} is not a Microsoft Entra object id (a GUID); list object ids, not names"
                ),
            )
        })?;
        moderators.push(parsed.hyphenated().to_string());
    }
    Ok(ModerationSettings {
        easy_auth,
        moderators,
    })
}

#[cfg(test)]
mod tests {
    use super::super::env::vars;
    use super::*;

    #[test]
    fn easy_auth_is_trusted_only_when_the_platform_says_true() {
        let read = |pairs: &[(&str, &str)]| from_vars(&Vars(&vars(pairs)));
        assert!(!read(&[]).unwrap().easy_auth);
        assert!(read(&[("WEBSITE_AUTH_ENABLED", "True")]).unwrap().easy_auth);
        assert!(
            !read(&[("WEBSITE_AUTH_ENABLED", "False")])
                .unwrap()
                .easy_auth
        );
        assert!(read(&[("WEBSITE_AUTH_ENABLED", "yes")]).is_err());
    }

    #[test]
    fn moderators_are_object_ids_compared_without_case() {
        let read = |value: &str| from_vars(&Vars(&vars(&[("MODERATORS", value)])));
        let settings =
            read("6F1C1D2E-4E0B-4F55-9D3B-0B2F1C3E4A5B, 11111111-2222-3333-4444-555555555555")
                .unwrap();
        assert_eq!(
            settings.moderators,
            [
                "6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b",
                "11111111-2222-3333-4444-555555555555"
            ]
        );
        let error = read("ada@contoso.com").unwrap_err().to_string();
        assert!(
            error.contains("MODERATORS") && error.contains("object id"),
            "{error}"
        );
    }
}
