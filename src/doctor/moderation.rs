//! Whether moderators can sign in, and how. Never a failure: a site without moderator sign-in
//! still serves, and the `moderate` command works wherever the app's settings do.

use std::collections::HashMap;

use super::Check;
use crate::config::Settings;

const NAME: &str = "moderator sign-in";

pub fn check(settings: &Settings, vars: &HashMap<String, String>) -> Check {
    let moderation = &settings.moderation;
    let on_app_service = vars.contains_key("WEBSITE_SITE_NAME");
    let listed = match moderation.moderators.len() {
        0 => "no object ids in MODERATORS".to_owned(),
        1 => "1 object id in MODERATORS".to_owned(),
        n => format!("{n} object ids in MODERATORS"),
    };
    let detail = if moderation.easy_auth {
        format!(
            "set up: App Service authentication is on, moderators sign in with Microsoft Entra ID at /.auth/login/aad ({listed}; the Moderator app role counts too)"
        )
    } else if on_app_service {
        let ignored = if moderation.moderators.is_empty() {
            String::new()
        } else {
            format!(" ({listed} are ignored without it)")
        };
        format!(
            "not set up: App Service authentication is off (WEBSITE_AUTH_ENABLED){ignored}, so nobody can moderate in the browser; moderate here with `restaurant-review moderate`, or turn it on with deploy/azure.sh up … --moderator <you>"
        )
    } else if settings.listen.ip().is_loopback() {
        format!(
            "local: listening on {}, so the app prints a one-time sign-in link at startup (or run `restaurant-review moderate sign-in-link`)",
            settings.listen
        )
    } else {
        format!(
            "not set up: listening on {} (not loopback), so no local sign-in link; moderate with `restaurant-review moderate`",
            settings.listen
        )
    };
    Check::pass(NAME, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars as vars;

    fn detail(pairs: &[(&str, &str)]) -> String {
        let map = vars(pairs);
        check(&Settings::from_vars(&map).unwrap(), &map).detail
    }

    #[test]
    fn each_way_of_signing_in_is_named() {
        assert!(detail(&[]).starts_with("local: listening on 127.0.0.1:8000"));
        let azure = [("WEBSITE_SITE_NAME", "app"), ("PORT", "8000")];
        assert!(detail(&azure).starts_with("not set up: App Service authentication is off"));
        let on = [
            ("WEBSITE_SITE_NAME", "app"),
            ("PORT", "8000"),
            ("WEBSITE_AUTH_ENABLED", "True"),
            ("MODERATORS", "6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b"),
        ];
        assert!(detail(&on).contains("set up: App Service authentication is on"));
        assert!(detail(&on).contains("1 object id in MODERATORS"));
    }
}
