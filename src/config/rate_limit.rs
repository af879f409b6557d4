//! Spam control: how many reviews and restaurants one client may post, and where the client's
//! address comes from.

use std::num::NonZeroU32;

use super::ConfigError;
use super::env::{Vars, invalid};

/// A person posts a review or two a minute; a script posting dozens a minute meets the limit
/// after its first burst.
pub const DEFAULT_POSTS_PER_MINUTE: u32 = 6;
/// Room for someone adding a restaurant and a few reviews in a row, or correcting a form.
pub const DEFAULT_POST_BURST: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Posts (reviews and restaurants, forms and API alike) per minute and client, refilled
    /// steadily; `None` turns the limit off (`RATE_LIMIT_POSTS_PER_MINUTE=0`).
    pub posts_per_minute: Option<NonZeroU32>,
    /// How many posts a client may make at once before the rate applies (`RATE_LIMIT_BURST`).
    pub burst: NonZeroU32,
    /// Behind App Service's front end (`WEBSITE_SITE_NAME` or `WEBSITE_INSTANCE_ID` set): the
    /// client is the address the platform appended to `X-Forwarded-For`, not the peer (which
    /// is the front end).
    pub behind_app_service: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            posts_per_minute: NonZeroU32::new(DEFAULT_POSTS_PER_MINUTE),
            burst: NonZeroU32::new(DEFAULT_POST_BURST).unwrap_or(NonZeroU32::MIN),
            behind_app_service: false,
        }
    }
}

impl RateLimitSettings {
    /// No limit at all: for tests and benchmarks that post in bulk from one address.
    pub fn off() -> Self {
        Self {
            posts_per_minute: None,
            ..Self::default()
        }
    }
}

pub(super) fn from_vars(vars: &Vars) -> Result<RateLimitSettings, ConfigError> {
    let mut settings = RateLimitSettings::default();
    if let Some(rate) = vars.parse::<u32>("RATE_LIMIT_POSTS_PER_MINUTE")? {
        settings.posts_per_minute = NonZeroU32::new(rate);
    }
    if let Some(burst) = vars.parse::<u32>("RATE_LIMIT_BURST")? {
        settings.burst = NonZeroU32::new(burst)
            .ok_or_else(|| invalid("RATE_LIMIT_BURST", "must be at least 1"))?;
    }
    settings.behind_app_service =
        vars.get("WEBSITE_SITE_NAME").is_some() || vars.get("WEBSITE_INSTANCE_ID").is_some();
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::vars;

    #[test]
    fn the_limit_is_on_by_default_off_at_zero_and_app_service_is_recognised() {
        let read = |pairs: &[(&str, &str)]| from_vars(&Vars(&vars(pairs)));
        let default = read(&[]).unwrap();
        assert_eq!(default, RateLimitSettings::default());
        assert!(!default.behind_app_service);
        assert_eq!(
            read(&[("RATE_LIMIT_POSTS_PER_MINUTE", "0")])
                .unwrap()
                .posts_per_minute,
            None
        );
        let azure = read(&[
            ("WEBSITE_INSTANCE_ID", "abc"),
            ("RATE_LIMIT_POSTS_PER_MINUTE", "30"),
            ("RATE_LIMIT_BURST", "5"),
        ])
        .unwrap();
        assert!(azure.behind_app_service);
        assert_eq!(azure.posts_per_minute, NonZeroU32::new(30));
        assert_eq!(azure.burst.get(), 5);
        for (name, value) in [
            ("RATE_LIMIT_BURST", "0"),
            ("RATE_LIMIT_BURST", "x"),
            ("RATE_LIMIT_POSTS_PER_MINUTE", "-1"),
        ] {
            let err = read(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }
}
