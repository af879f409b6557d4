//! One-off messages after a redirect ("Review added"), with no server-side session: several
//! instances run behind App Service's load balancer, so the message travels with the browser.
//!
//! It is a short-lived cookie set on the 303 and scoped to the page redirected to, cleared by
//! that page when it shows the message. A cookie rather than a `?added=…` flag on the URL: the
//! message shows once, and a reload, a bookmark or a shared link never repeats it. The cookie
//! carries a code, not text, so nothing a client sends is ever shown.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};

use super::security::cookies_named;

pub const FLASH_COOKIE: &str = "flash";
/// Long enough for the redirect to be followed on a slow phone, short enough that a message
/// never turns up on a later visit.
const LIFETIME_SECONDS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flash {
    RestaurantAdded,
    ReviewAdded,
    ReviewReported,
    ReviewHidden,
    ReviewRestored,
    ReviewDeleted,
    PhotoRemoved,
    ReportsDismissed,
    RestaurantSaved,
    RestaurantsMerged,
    NothingToDo,
    SignedIn,
}

impl Flash {
    const ALL: [Self; 12] = [
        Self::RestaurantAdded,
        Self::ReviewAdded,
        Self::ReviewReported,
        Self::ReviewHidden,
        Self::ReviewRestored,
        Self::ReviewDeleted,
        Self::PhotoRemoved,
        Self::ReportsDismissed,
        Self::RestaurantSaved,
        Self::RestaurantsMerged,
        Self::NothingToDo,
        Self::SignedIn,
    ];

    fn code(self) -> &'static str {
        match self {
            Self::RestaurantAdded => "restaurant-added",
            Self::ReviewAdded => "review-added",
            Self::ReviewReported => "review-reported",
            Self::ReviewHidden => "review-hidden",
            Self::ReviewRestored => "review-restored",
            Self::ReviewDeleted => "review-deleted",
            Self::PhotoRemoved => "photo-removed",
            Self::ReportsDismissed => "reports-dismissed",
            Self::RestaurantSaved => "restaurant-saved",
            Self::RestaurantsMerged => "restaurants-merged",
            Self::NothingToDo => "nothing-to-do",
            Self::SignedIn => "signed-in",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::RestaurantAdded => "Restaurant added. Be the first to review it below.",
            Self::ReviewAdded => "Review added. Thank you!",
            Self::ReviewReported => "Thank you. A moderator will look at the review.",
            Self::ReviewHidden => "Review hidden. It no longer counts in the restaurant's rating.",
            Self::ReviewRestored => "Review restored. It shows and counts again.",
            Self::ReviewDeleted => "Review deleted for good, with its photo.",
            Self::PhotoRemoved => "Photo removed. The review stays.",
            Self::ReportsDismissed => "Reports dismissed. The review stays as it is.",
            Self::RestaurantSaved => "Restaurant saved.",
            Self::RestaurantsMerged => "Restaurants merged. The old address now leads here.",
            Self::NothingToDo => "Nothing to do: it was already so.",
            Self::SignedIn => "Signed in as a moderator.",
        }
    }

    /// The message the request's cookie asks for; an unknown code is ignored.
    pub fn from_request(headers: &HeaderMap) -> Option<Self> {
        cookies_named(headers, FLASH_COOKIE)
            .find_map(|c| Self::ALL.into_iter().find(|f| f.code() == c.value()))
    }
}

/// A 303 to `path` (a page path such as `/5/`) that shows `flash` there once.
pub fn redirect(request: &HeaderMap, path: &str, flash: Flash) -> Response {
    let cookie = Cookie::build((FLASH_COOKIE, flash.code()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(super::security::is_https(request))
        .max_age(cookie::time::Duration::seconds(LIFETIME_SECONDS))
        .build();
    with_cookie(Redirect::to(path).into_response(), &cookie)
}

/// `response` (the page at `path`, which showed the message) with the flash cookie cleared.
pub fn shown(response: Response, path: &str) -> Response {
    let cookie = Cookie::build((FLASH_COOKIE, ""))
        .path(path.to_owned())
        .max_age(cookie::time::Duration::ZERO)
        .build();
    with_cookie(response, &cookie)
}

fn with_cookie(mut response: Response, cookie: &Cookie<'_>) -> Response {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_round_trips_through_its_cookie_and_unknown_codes_are_ignored() {
        for flash in Flash::ALL {
            let response = redirect(&HeaderMap::new(), "/7/", flash);
            assert_eq!(response.status(), axum::http::StatusCode::SEE_OTHER);
            let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
            assert!(
                set.contains("Path=/7/") && set.contains("Max-Age=60"),
                "{set}"
            );
            let mut request = HeaderMap::new();
            let pair = set.split(';').next().unwrap();
            request.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
            assert_eq!(Flash::from_request(&request), Some(flash));
        }
        let mut request = HeaderMap::new();
        request.insert(
            header::COOKIE,
            HeaderValue::from_static("csrftoken=x; flash=<script>"),
        );
        assert_eq!(Flash::from_request(&request), None);
    }

    #[test]
    fn showing_a_flash_clears_its_cookie_on_the_same_path() {
        let response = shown(().into_response(), "/7/");
        let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            set.starts_with("flash=;") && set.contains("Path=/7/"),
            "{set}"
        );
        assert!(set.contains("Max-Age=0"), "{set}");
    }
}
