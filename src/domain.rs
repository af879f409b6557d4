//! Types that can only be built valid.
//!
//! Every limit here is the one the Azure sample declares in its models and is
//! enforced a second time by the database's CHECK constraints, so a bug in one layer cannot store
//! a rating of 9 or a 600-character review.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Why a piece of user input was refused; the message is shown next to the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

/// Characters that change how the text around them is shown without being seen: the Unicode
/// bidirectional controls (a right-to-left override makes "gnp.exe" read "exe.png") and the
/// invisible spaces and joiners that let one name pass for another. Refused in names; the zero
/// width joiner and non-joiner are allowed, because Persian, Indic scripts and emoji need them.
fn is_disguising(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{200B}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// Text the user typed, in Unicode NFC (so "é" typed either way is one character and the same
/// name), trimmed, counted in characters (what PostgreSQL's `varchar(n)` and SQLite's
/// `length()` count), free of control characters other than line breaks and tabs (PostgreSQL
/// cannot store NUL, and the rest only ever hides content); single-line fields (names) also
/// refuse [`is_disguising`] characters.
fn clean_text(
    label: &str,
    raw: &str,
    max_chars: usize,
    required: bool,
    multiline: bool,
) -> Result<String, FieldError> {
    let normalized: String = raw.nfc().collect();
    let trimmed = normalized.trim();
    if required && trimmed.is_empty() {
        return Err(FieldError(format!("{label} is required.")));
    }
    let count = trimmed.chars().count();
    if count > max_chars {
        return Err(FieldError(format!(
            "{label} can be at most {max_chars} characters (this one has {count})."
        )));
    }
    let allowed_control = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if trimmed
        .chars()
        .any(|c| c.is_control() && !allowed_control(c))
    {
        return Err(FieldError(format!(
            "{label} contains characters that cannot be stored."
        )));
    }
    if !multiline && trimmed.chars().any(is_disguising) {
        return Err(FieldError(format!(
            "{label} contains invisible or direction-changing characters, which could disguise it."
        )));
    }
    // Normalise Windows line endings so lengths match what the browser showed.
    Ok(if multiline {
        trimmed.replace("\r\n", "\n")
    } else {
        trimmed.to_owned()
    })
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $label:literal, max = $max:literal, required = $required:literal, multiline = $multiline:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                clean_text($label, raw, $max, $required, $multiline).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A restaurant's name: required, at most 50 characters.
    RestaurantName, "Name", max = 50, required = true, multiline = false
);
text_type!(
    /// A street address: optional, at most 50 characters.
    StreetAddress, "Street address", max = 50, required = false, multiline = false
);
text_type!(
    /// A restaurant's description: required, at most 250 characters.
    Description, "Description", max = 250, required = true, multiline = true
);
text_type!(
    /// The reviewer's name: required, at most 20 characters.
    UserName, "Your name", max = 20, required = true, multiline = false
);
text_type!(
    /// The review itself: may be empty, at most 500 characters.
    ReviewText, "Review", max = 500, required = false, multiline = true
);

/// A star rating from 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rating(u8);

impl Rating {
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 5;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(FieldError("Choose a rating from 1 to 5 stars.".into()));
        }
        raw.parse::<u8>()
            .ok()
            .and_then(|n| Self::new(n).ok())
            .ok_or_else(|| FieldError("The rating must be a whole number from 1 to 5.".into()))
    }

    pub fn new(value: u8) -> Result<Self, FieldError> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(FieldError(
                "The rating must be a whole number from 1 to 5.".into(),
            ))
        }
    }

    pub fn value(self) -> u8 {
        self.0
    }
}

/// A restaurant's primary key as it appears in URLs (`/<id>/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RestaurantId(i64);

impl RestaurantId {
    /// Parses the path segment; anything that is not a positive integer is simply "no such
    /// restaurant" (404), never a 500.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        raw.parse::<i64>().ok().filter(|id| *id > 0).map(Self)
    }

    pub fn from_db(id: i64) -> Self {
        Self(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for RestaurantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A validated new restaurant.
#[derive(Debug, Clone)]
pub struct NewRestaurant {
    pub name: RestaurantName,
    pub street_address: StreetAddress,
    pub description: Description,
}

/// A validated new review (the photo, if any, is stored separately under `image_name`).
#[derive(Debug, Clone)]
pub struct NewReview {
    pub user_name: UserName,
    pub rating: Rating,
    pub review_text: ReviewText,
}

/// A restaurant's review statistics, kept as a running count and sum so the index page never
/// aggregates over all reviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatingSummary {
    pub review_count: i64,
    pub rating_sum: i64,
}

impl RatingSummary {
    /// Average rating in tenths, rounded half up (`43` means 4.3); `None` without reviews.
    pub fn average_tenths(self) -> Option<i64> {
        (self.review_count > 0)
            .then(|| (20 * self.rating_sum + self.review_count) / (2 * self.review_count))
    }

    /// The average with one decimal, e.g. "4.3".
    pub fn average_display(self) -> Option<String> {
        self.average_tenths()
            .map(|t| format!("{}.{}", t / 10, t % 10))
    }

    /// "1 review", "12 reviews".
    pub fn count_display(self) -> String {
        match self.review_count {
            1 => "1 review".to_owned(),
            n => format!("{n} reviews"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_accepts_one_to_five_only() {
        for ok in ["1", "2", "3", "4", "5", " 5 "] {
            assert!(Rating::parse(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in ["0", "6", "9", "abc", "", "-1", "3.5", "256", "1e0"] {
            assert!(Rating::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn names_count_characters_not_bytes() {
        assert!(RestaurantName::parse(&"é".repeat(50)).is_ok());
        assert!(RestaurantName::parse(&"é".repeat(51)).is_err());
        assert!(UserName::parse(&"x".repeat(21)).is_err());
        assert!(ReviewText::parse(&"x".repeat(500)).is_ok());
        assert!(ReviewText::parse(&"x".repeat(501)).is_err());
    }

    #[test]
    fn required_text_must_not_be_blank_and_nul_is_refused() {
        assert!(RestaurantName::parse("   ").is_err());
        assert!(Description::parse("").is_err());
        assert!(StreetAddress::parse("").is_ok());
        assert!(RestaurantName::parse("a\0b").is_err());
        assert!(
            ReviewText::parse("line one\r\nline two").unwrap().as_str() == "line one\nline two"
        );
    }

    #[test]
    fn text_is_stored_in_nfc_so_one_name_has_one_spelling() {
        let decomposed = "Cafe\u{301}"; // "e" followed by a combining acute accent
        let name = RestaurantName::parse(decomposed).unwrap();
        assert_eq!(name.as_str(), "Caf\u{e9}");
        assert_eq!(name.as_str().chars().count(), 4);
        // 50 decomposed "é" are 100 code points but 50 characters once composed.
        assert!(RestaurantName::parse(&"e\u{301}".repeat(50)).is_ok());
    }

    #[test]
    fn names_with_direction_overrides_or_invisible_characters_are_refused() {
        for (case, raw) in [
            ("right-to-left override", "Bob\u{202E}gnp.exe"),
            ("left-to-right isolate", "\u{2066}Eve\u{2069}"),
            ("right-to-left mark", "Mallory\u{200F}"),
            ("zero width space", "Ad\u{200B}min"),
            ("word joiner", "Ad\u{2060}min"),
            ("byte order mark", "\u{FEFF}Alice"),
        ] {
            assert!(UserName::parse(raw).is_err(), "{case}");
            assert!(RestaurantName::parse(raw).is_err(), "{case}");
        }
        // Scripts that need joiners keep them: Persian "mi-khaham" with a zero width non-joiner.
        assert!(
            UserName::parse("\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}")
                .is_ok()
        );
        assert!(UserName::parse("\u{05E9}\u{05E8}\u{05D4}").is_ok()); // Hebrew, right-to-left by itself
    }

    #[test]
    fn restaurant_ids_are_positive_integers() {
        assert_eq!(RestaurantId::parse("42").map(RestaurantId::get), Some(42));
        for bad in ["0", "-1", "abc", "", "1.0", "99999999999999999999", "+1"] {
            assert!(RestaurantId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn averages_round_half_up_to_one_decimal() {
        let s = |count, sum| RatingSummary {
            review_count: count,
            rating_sum: sum,
        };
        assert_eq!(s(0, 0).average_display(), None);
        assert_eq!(s(3, 13).average_display().as_deref(), Some("4.3"));
        assert_eq!(s(4, 17).average_display().as_deref(), Some("4.3")); // 4.25
        assert_eq!(s(1, 5).average_display().as_deref(), Some("5.0"));
        assert_eq!(s(1, 1).count_display(), "1 review");
    }
}
