//! Spam control: posting reviews and restaurants (forms and API alike) is limited per client,
//! by governor's keyed GCRA limiter (one small state per client address, no locks held across
//! requests).
//!
//! Who the client is: on App Service the TCP peer is the platform's front end, which appends
//! the address it saw to `X-Forwarded-For`, so the right-most entry is the one to trust (the
//! entries left of it are whatever the client sent). Anywhere else that header is the client's
//! own words and is ignored: a client must not be able to choose its bucket. IPv6 clients are
//! counted per /64, the block a single subscriber usually holds.
//!
//! The limit is per instance (the state lives in this process): see the README for why.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitSettings;
use crate::web::AppState;

/// How often clients whose buckets are full again are forgotten. A client is remembered only
/// while it is below its burst (at most `burst / rate`, 100 s by default), so memory holds the
/// clients that posted in the last couple of minutes, never every address ever seen.
const FORGET_EVERY: Duration = Duration::from_secs(30);

/// A post refused for coming too fast: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPosts {
    pub retry_after: Duration,
}

impl TooManyPosts {
    /// Whole seconds for `Retry-After`, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }

    pub fn message(&self) -> String {
        let seconds = self.retry_after_secs();
        let unit = if seconds == 1 { "second" } else { "seconds" };
        format!(
            "You are posting faster than this site allows. Nothing was saved; please wait {seconds} {unit} and send it again."
        )
    }
}

/// The post limiter shared by every handler that writes (cheap to clone).
#[derive(Clone)]
pub struct PostLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    clock: DefaultClock,
    behind_app_service: bool,
}

impl PostLimiter {
    /// Must run inside the Tokio runtime: it starts the task that forgets idle clients (which
    /// ends when the limiter is dropped).
    pub fn new(settings: &RateLimitSettings) -> Self {
        let clock = DefaultClock::default();
        let limiter = settings.posts_per_minute.map(|rate| {
            let quota = Quota::per_minute(rate).allow_burst(settings.burst);
            let limiter = Arc::new(RateLimiter::dashmap_with_clock(quota, clock.clone()));
            tokio::spawn(forget_idle_clients(Arc::downgrade(&limiter)));
            limiter
        });
        Self {
            limiter,
            clock,
            behind_app_service: settings.behind_app_service,
        }
    }

    /// Counts one post by the client of this request, or says how long it must wait.
    pub fn check(&self, client: IpAddr) -> Result<(), TooManyPosts> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&client).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(self.clock.now());
            tracing::info!(
                retry_after_ms = retry_after.as_millis() as u64,
                "post refused: too many from one client"
            );
            TooManyPosts { retry_after }
        })
    }

    /// The client's bucket key for a request: see the module's comment.
    pub fn client_of(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
        let forwarded = self
            .behind_app_service
            .then(|| platform_forwarded_for(headers))
            .flatten();
        let address = forwarded
            .or(peer.map(|p| p.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        bucket_key(address)
    }
}

/// The client a write is counted against, as an extractor: `Poster(ip)`.
#[derive(Debug, Clone, Copy)]
pub struct Poster(pub IpAddr);

impl FromRequestParts<AppState> for Poster {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        Ok(Poster(app.posts.client_of(&parts.headers, peer)))
    }
}

async fn forget_idle_clients(limiter: Weak<DefaultKeyedRateLimiter<IpAddr>>) {
    let mut tick = tokio::time::interval(FORGET_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

/// The address App Service's front end appended: the right-most `X-Forwarded-For` entry over
/// all the header's lines, without its port (`203.0.113.7:51234`, `[2001:db8::1]:51234`).
fn platform_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last_line = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last = last_line.to_str().ok()?.rsplit(',').next()?.trim();
    parse_address(last)
}

fn parse_address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(with_port) = entry.parse::<SocketAddr>() {
        return Some(with_port.ip());
    }
    // "[2001:db8::1]" without a port.
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// IPv4 as it is (IPv4-mapped IPv6 too); IPv6 by its /64.
fn bucket_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use axum::http::HeaderValue;

    use super::*;

    fn limiter(behind_app_service: bool) -> PostLimiter {
        PostLimiter {
            limiter: None,
            clock: DefaultClock::default(),
            behind_app_service,
        }
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    #[test]
    fn the_platforms_right_most_entry_is_the_client_on_app_service_only() {
        let peer = Some("10.0.0.9:4000".parse().unwrap());
        let sent = headers(&["1.1.1.1, 203.0.113.7:51234"]);
        assert_eq!(
            limiter(true).client_of(&sent, peer),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            limiter(false).client_of(&sent, peer),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
        let two_lines = headers(&["1.1.1.1", "[2001:db8:1:2::9]:443"]);
        assert_eq!(
            limiter(true).client_of(&two_lines, peer),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        // Nothing usable from the platform: the peer.
        for broken in [headers(&[]), headers(&["1.1.1.1, garbage"])] {
            assert_eq!(
                limiter(true).client_of(&broken, peer),
                "10.0.0.9".parse::<IpAddr>().unwrap()
            );
        }
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let key = |s: &str| bucket_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:aa:bb:1:2:3:4"), "2001:db8:aa:bb::");
        assert_eq!(key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(parse_address("[2001:db8::1]"), "2001:db8::1".parse().ok());
        assert_eq!(parse_address("192.0.2.1:80"), "192.0.2.1".parse().ok());
    }

    #[tokio::test]
    async fn a_client_past_its_burst_waits_and_others_do_not() {
        let limiter = PostLimiter::new(&RateLimitSettings {
            posts_per_minute: NonZeroU32::new(6),
            burst: NonZeroU32::new(2).unwrap(),
            behind_app_service: false,
        });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let refused = limiter.check(a).unwrap_err();
        assert!(
            (9..=10).contains(&refused.retry_after_secs()),
            "{refused:?}"
        );
        assert!(refused.message().contains("seconds"));
        assert!(limiter.check(b).is_ok());
        assert!(PostLimiter::new(&RateLimitSettings::off()).check(a).is_ok());
    }
}
