//! Reading the two forms strictly: invalid UTF-8, duplicated fields and oversized parts are
//! refused with a clear message instead of being silently repaired or buffered.

use std::collections::BTreeMap;
use std::collections::HashMap;

use axum::extract::multipart::{Field, Multipart, MultipartError};
use bytes::{Bytes, BytesMut};

use super::security::{CSRF_FIELD, CsrfToken};
use crate::domain::{
    Description, FieldError, NewRestaurant, NewReview, Rating, RestaurantName, ReviewText,
    StreetAddress, UserName,
};

/// Longest accepted text field, in bytes: far above every limit (500 characters of 4 bytes),
/// so an over-long review still gets its friendly "at most 500 characters" message, while a
/// megabyte of text is refused before it is buffered.
pub const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;
/// Room for the text fields and multipart framing on top of the photo itself.
pub const FORM_OVERHEAD_BYTES: u64 = 5 * MAX_TEXT_FIELD_BYTES as u64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("The form could not be read: {0}")]
    Malformed(String),
    #[error("The field \"{0}\" was sent more than once.")]
    Duplicate(String),
    #[error("The field \"{0}\" is not valid UTF-8 text.")]
    InvalidUtf8(String),
    #[error("The field \"{0}\" is too long.")]
    FieldTooLong(String),
    #[error("The form's security token is missing or wrong.")]
    Csrf,
}

/// Messages for the fields that failed validation, keyed by field name.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.insert(field, message.into());
    }

    fn check<T>(&mut self, field: &'static str, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.insert(field, e.0)).ok()
    }
}

/// Decodes an `application/x-www-form-urlencoded` body. Written by hand because the usual
/// decoders (`form_urlencoded`, `serde_urlencoded`) replace invalid UTF-8 silently and keep the
/// last of duplicated fields, and we refuse both.
pub fn parse_urlencoded(body: &[u8]) -> Result<HashMap<String, String>, FormError> {
    let mut fields = HashMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let decode = |raw: &[u8]| -> Result<String, Vec<u8>> {
            let plus_as_space: Vec<u8> = raw
                .iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect();
            let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
            String::from_utf8(bytes).map_err(|e| e.into_bytes())
        };
        let name = decode(raw_name).map_err(|bytes| {
            FormError::InvalidUtf8(String::from_utf8_lossy(&bytes).into_owned())
        })?;
        let value = decode(raw_value).map_err(|_| FormError::InvalidUtf8(name.clone()))?;
        if fields.insert(name.clone(), value).is_some() {
            return Err(FormError::Duplicate(name));
        }
    }
    Ok(fields)
}

/// The add-restaurant form as typed, kept to show it again when it is refused.
#[derive(Debug, Default, Clone)]
pub struct RestaurantInput {
    pub restaurant_name: String,
    pub street_address: String,
    pub description: String,
}

impl RestaurantInput {
    pub fn from_fields(fields: &mut HashMap<String, String>) -> Self {
        let mut take = |name: &str| fields.remove(name).unwrap_or_default();
        Self {
            restaurant_name: take("restaurant_name"),
            street_address: take("street_address"),
            description: take("description"),
        }
    }

    pub fn validate(&self) -> Result<NewRestaurant, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = errors.check(
            "restaurant_name",
            RestaurantName::parse(&self.restaurant_name),
        );
        let street = errors.check("street_address", StreetAddress::parse(&self.street_address));
        let description = errors.check("description", Description::parse(&self.description));
        match (name, street, description) {
            (Some(name), Some(street_address), Some(description)) => Ok(NewRestaurant {
                name,
                street_address,
                description,
            }),
            _ => Err(errors),
        }
    }
}

/// The review form as typed (the photo is never echoed back).
#[derive(Debug, Default, Clone)]
pub struct ReviewInput {
    pub user_name: String,
    pub rating: String,
    pub review_text: String,
}

impl ReviewInput {
    pub fn validate(&self) -> Result<NewReview, FieldErrors> {
        let mut errors = FieldErrors::default();
        let user_name = errors.check("user_name", UserName::parse(&self.user_name));
        let rating = errors.check("rating", Rating::parse(&self.rating));
        let review_text = errors.check("review_text", ReviewText::parse(&self.review_text));
        match (user_name, rating, review_text) {
            (Some(user_name), Some(rating), Some(review_text)) => Ok(NewReview {
                user_name,
                rating,
                review_text,
            }),
            _ => Err(errors),
        }
    }
}

/// An uploaded file as received, before any image processing.
#[derive(Debug)]
pub struct Upload {
    pub bytes: Bytes,
}

#[derive(Debug)]
pub struct ReviewSubmission {
    pub input: ReviewInput,
    pub photo: Option<Upload>,
}

/// Why a review submission could not be read at all.
#[derive(Debug)]
pub enum ReviewReadError {
    Form(FormError),
    /// The photo passed the size limit while streaming; what was typed before it is kept.
    PhotoTooLarge(ReviewInput),
}

impl From<FormError> for ReviewReadError {
    fn from(error: FormError) -> Self {
        ReviewReadError::Form(error)
    }
}

/// A body over the overall limit is reported like an oversized photo, keeping what was typed.
fn multipart_error(error: MultipartError, texts: &HashMap<String, String>) -> ReviewReadError {
    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ReviewReadError::PhotoTooLarge(review_input(texts))
    } else {
        ReviewReadError::Form(FormError::Malformed(error.body_text()))
    }
}

/// Reads a field's bytes, refusing more than `limit` as soon as it is passed.
async fn read_limited(
    field: &mut Field<'_>,
    limit: u64,
) -> Result<Option<BytesMut>, MultipartError> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = field.chunk().await? {
        if (buffer.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Some(buffer))
}

/// Streams the multipart review form (`user_name`, `rating`, `review_text`, `reviewImage`,
/// and the CSRF token), checking the token before the photo is read and the photo's size while
/// it arrives.
pub async fn read_review_form(
    mut multipart: Multipart,
    csrf: &CsrfToken,
    max_photo_bytes: u64,
) -> Result<ReviewSubmission, ReviewReadError> {
    let mut texts: HashMap<String, String> = HashMap::new();
    let mut photo: Option<Upload> = None;
    let mut photo_seen = false;
    let mut token_ok = false;

    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(e, &texts))?
    {
        let name = field
            .name()
            .ok_or_else(|| FormError::Malformed("a form part has no field name".into()))?
            .to_owned();
        match name.as_str() {
            "reviewImage" => {
                if std::mem::replace(&mut photo_seen, true) {
                    return Err(FormError::Duplicate(name).into());
                }
                // Never spend effort on a photo from a request that may be forged.
                if !token_ok {
                    return Err(FormError::Csrf.into());
                }
                let has_file_name = field.file_name().is_some_and(|f| !f.is_empty());
                let Some(bytes) = read_limited(&mut field, max_photo_bytes)
                    .await
                    .map_err(|e| multipart_error(e, &texts))?
                else {
                    return Err(ReviewReadError::PhotoTooLarge(review_input(&texts)));
                };
                // A form submitted without choosing a file sends an empty, unnamed part.
                if has_file_name || !bytes.is_empty() {
                    photo = Some(Upload {
                        bytes: bytes.freeze(),
                    });
                }
            }
            _ => {
                let Some(bytes) = read_limited(&mut field, MAX_TEXT_FIELD_BYTES as u64)
                    .await
                    .map_err(|e| multipart_error(e, &texts))?
                else {
                    return Err(FormError::FieldTooLong(name).into());
                };
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| FormError::InvalidUtf8(name.clone()))?;
                if name == CSRF_FIELD {
                    token_ok = csrf.matches(&text);
                }
                if texts.insert(name.clone(), text).is_some() {
                    return Err(FormError::Duplicate(name).into());
                }
            }
        }
    }
    if !token_ok {
        return Err(FormError::Csrf.into());
    }
    Ok(ReviewSubmission {
        input: review_input(&texts),
        photo,
    })
}

fn review_input(texts: &HashMap<String, String>) -> ReviewInput {
    let take = |name: &str| texts.get(name).cloned().unwrap_or_default();
    ReviewInput {
        user_name: take("user_name"),
        rating: take("rating"),
        review_text: take("review_text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_fields_are_decoded_strictly() {
        let fields =
            parse_urlencoded(b"restaurant_name=Caf%C3%A9+Rouge&description=a%26b&empty").unwrap();
        assert_eq!(fields["restaurant_name"], "Café Rouge");
        assert_eq!(fields["description"], "a&b");
        assert_eq!(fields["empty"], "");
        assert_eq!(
            parse_urlencoded(b"a=1&a=2").unwrap_err(),
            FormError::Duplicate("a".into())
        );
        assert_eq!(
            parse_urlencoded(b"restaurant_name=%FF%FE").unwrap_err(),
            FormError::InvalidUtf8("restaurant_name".into())
        );
    }

    #[test]
    fn restaurant_validation_reports_every_bad_field() {
        let input = RestaurantInput {
            restaurant_name: String::new(),
            street_address: "x".repeat(51),
            description: "Nice".into(),
        };
        let errors = input.validate().unwrap_err();
        assert!(errors.get("restaurant_name").is_some());
        assert!(errors.get("street_address").is_some());
        assert!(errors.get("description").is_none());
    }
}
