//! Reading the two forms strictly: invalid UTF-8, duplicated fields and oversized parts are
//! refused with a clear message instead of being silently repaired or buffered.

use std::collections::HashMap;

use axum::extract::multipart::{Field, Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::BytesMut;

use super::security::{CSRF_FIELD, CsrfToken};
use crate::forms::{ReviewInput, field};
use crate::reviews::{Refusal, Submission};

/// Longest accepted text field, in bytes: far above every limit (500 characters of 4 bytes),
/// so an over-long review still gets its friendly "at most 500 characters" message, while a
/// megabyte of text is refused before it is buffered.
pub const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;
/// Room for the text fields and multipart framing on top of the photo itself.
const FORM_OVERHEAD_BYTES: u64 = 5 * MAX_TEXT_FIELD_BYTES as u64;

/// The largest review request body: the photo limit plus the form around it.
pub fn review_body_limit(max_photo_bytes: u64) -> u64 {
    max_photo_bytes + FORM_OVERHEAD_BYTES
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("The form could not be read: {0}")]
    Malformed(String),
    #[error("The field \"{0}\" was sent more than once.")]
    Duplicate(String),
    #[error("The field \"{0}\" is not valid UTF-8 text.")]
    InvalidUtf8(String),
    #[error("The field \"{0}\" has a \"%\" that is not followed by two hex digits.")]
    BrokenEscape(String),
    #[error("The field \"{0}\" is too long.")]
    FieldTooLong(String),
    #[error("The form's security token is missing or wrong.")]
    Csrf,
}

impl FormError {
    /// Where to show the problem: next to the field it names, if the form has that field.
    pub fn shown_at(&self) -> &'static str {
        match self {
            FormError::Duplicate(name)
            | FormError::InvalidUtf8(name)
            | FormError::BrokenEscape(name)
            | FormError::FieldTooLong(name) => field::shown_at(name),
            FormError::Malformed(_) | FormError::Csrf => field::FORM,
        }
    }
}

/// Decodes an `application/x-www-form-urlencoded` body. Written by hand because the usual
/// decoders (`form_urlencoded`, `serde_urlencoded`) replace invalid UTF-8 silently, keep a `%`
/// without two hex digits as it is, and keep the last of duplicated fields; we refuse all three
/// (browsers never send them).
pub fn parse_urlencoded(body: &[u8]) -> Result<HashMap<String, String>, FormError> {
    let mut fields = HashMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode_component(raw_name).map_err(|refusal| {
            let shown = String::from_utf8_lossy(raw_name).into_owned();
            refusal(shown)
        })?;
        let value = decode_component(raw_value).map_err(|refusal| refusal(name.clone()))?;
        if fields.insert(name.clone(), value).is_some() {
            return Err(FormError::Duplicate(name));
        }
    }
    Ok(fields)
}

/// One name or value: `+` is a space, `%XX` a byte, and the bytes must be UTF-8. On failure,
/// the error for the field it will be named after.
fn decode_component(raw: &[u8]) -> Result<String, fn(String) -> FormError> {
    let broken_escape = raw.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !raw
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if broken_escape {
        return Err(FormError::BrokenEscape);
    }
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).map_err(|_| FormError::InvalidUtf8 as fn(String) -> FormError)
}

/// Why a review request did not yield a submission.
#[derive(Debug)]
pub enum ReadFailure {
    /// The CSRF token is missing or wrong: answered with the forbidden page, not the form.
    Csrf,
    Refused(Refusal),
}

impl From<Refusal> for ReadFailure {
    fn from(refusal: Refusal) -> Self {
        ReadFailure::Refused(refusal)
    }
}

/// Reads the multipart review form (`user_name`, `rating`, `review_text`, `reviewImage`, and
/// the CSRF token): the token is checked before the photo is read, and the photo's size while
/// it arrives; with a declared size over the limit the photo is refused without reading it,
/// the text fields before it still kept. `csrf` is `None` for the API, which takes no cookies
/// (and so needs no token).
pub async fn read_review(
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    csrf: Option<&CsrfToken>,
    max_photo_bytes: u64,
) -> Result<Submission, ReadFailure> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Still read: the text fields come first, so what was typed is kept; the photo is then
    // refused without buffering any of it (the rest of the body is discarded by `drain`).
    let declared_too_large = declared.is_some_and(|len| len > review_body_limit(max_photo_bytes));
    let multipart = multipart.map_err(|rejection| {
        let message = format!(
            "The review form could not be read: {}",
            rejection.body_text()
        );
        Refusal::malformed(field::FORM, message)
    })?;
    let mut reader = ReviewReader {
        texts: HashMap::new(),
        max_photo_bytes,
        declared_too_large,
        declared,
    };
    match reader.read(multipart, csrf).await {
        Ok(submission) => Ok(submission),
        Err(Stop::Form(FormError::Csrf)) => Err(ReadFailure::Csrf),
        Err(Stop::Form(error)) => {
            Err(Refusal::malformed(error.shown_at(), error.to_string()).into())
        }
        Err(Stop::PhotoTooLarge) => {
            Err(Refusal::too_large(ReviewInput::from_fields(&reader.texts), max_photo_bytes).into())
        }
    }
}

enum Stop {
    Form(FormError),
    /// The photo (or the body) passed the size limit while streaming; what was typed before it
    /// is kept.
    PhotoTooLarge,
}

impl From<FormError> for Stop {
    fn from(error: FormError) -> Self {
        Stop::Form(error)
    }
}

/// A body over the overall limit is reported like an oversized photo.
impl From<MultipartError> for Stop {
    fn from(error: MultipartError) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Stop::PhotoTooLarge
        } else {
            Stop::Form(FormError::Malformed(error.body_text()))
        }
    }
}

struct ReviewReader {
    texts: HashMap<String, String>,
    max_photo_bytes: u64,
    /// The declared length is over the limit: the photo is refused on sight.
    declared_too_large: bool,
    /// The body's declared length, which bounds the photo's.
    declared: Option<u64>,
}

impl ReviewReader {
    async fn read(
        &mut self,
        mut multipart: Multipart,
        csrf: Option<&CsrfToken>,
    ) -> Result<Submission, Stop> {
        let mut photo = None;
        let (mut photo_seen, mut token_ok) = (false, csrf.is_none());
        while let Some(mut part) = multipart.next_field().await? {
            let name = part
                .name()
                .ok_or_else(|| FormError::Malformed("a form part has no field name".into()))?
                .to_owned();
            if name == field::REVIEW_IMAGE {
                if std::mem::replace(&mut photo_seen, true) {
                    return Err(FormError::Duplicate(name).into());
                }
                // Never spend effort on a photo from a request that may be forged.
                if !token_ok {
                    return Err(FormError::Csrf.into());
                }
                if self.declared_too_large {
                    return Err(Stop::PhotoTooLarge);
                }
                let has_file_name = part.file_name().is_some_and(|f| !f.is_empty());
                let expected = self.declared.unwrap_or(0).min(self.max_photo_bytes);
                let bytes = read_limited(&mut part, self.max_photo_bytes, expected)
                    .await?
                    .ok_or(Stop::PhotoTooLarge)?;
                // A form submitted without choosing a file sends an empty, unnamed part.
                if has_file_name || !bytes.is_empty() {
                    photo = Some(bytes.freeze());
                }
                continue;
            }
            let bytes = read_limited(&mut part, MAX_TEXT_FIELD_BYTES as u64, 0)
                .await?
                .ok_or_else(|| FormError::FieldTooLong(name.clone()))?;
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| FormError::InvalidUtf8(name.clone()))?;
            if let Some(csrf) = csrf
                && name == CSRF_FIELD
            {
                token_ok = csrf.matches(&text);
            }
            if self.texts.insert(name.clone(), text).is_some() {
                return Err(FormError::Duplicate(name).into());
            }
        }
        if !token_ok {
            return Err(FormError::Csrf.into());
        }
        Ok(Submission {
            input: ReviewInput::from_fields(&self.texts),
            photo,
        })
    }
}

/// Reads a part's bytes, or `None` as soon as more than `limit` arrived. The buffer is made
/// `expected` bytes large at once (the declared body length, within the limit): grown by
/// doubling instead, a photo's buffer held up to twice its size while it waited for the memory
/// budget, memory the budget does not count. Pages a client never sends are never touched.
async fn read_limited(
    part: &mut Field<'_>,
    limit: u64,
    expected: u64,
) -> Result<Option<BytesMut>, MultipartError> {
    let mut buffer = BytesMut::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = part.chunk().await? {
        if (buffer.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Some(buffer))
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
}

#[cfg(test)]
#[path = "urlencoded_proptests.rs"]
mod urlencoded_proptests;

#[cfg(test)]
#[path = "multipart_proptests.rs"]
mod multipart_proptests;
