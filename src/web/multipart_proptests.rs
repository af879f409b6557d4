//! Properties of the multipart review reader, fed through axum's real `Multipart` extractor
//! and the CSRF middleware: any body, however mangled, gives a submission or a clear refusal
//! (never a panic or a hang), and a well-formed form reads back as the fields sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Extension, Request};
use axum::http::{HeaderMap, header};
use axum::middleware;
use axum::routing::post;
use proptest::prelude::*;
use tower::ServiceExt;

use super::{ReadFailure, read_review, review_body_limit};
use crate::forms::field;
use crate::reviews::{RefusalKind, Submission};
use crate::web::security::{CSRF_COOKIE, CSRF_FIELD, CsrfToken, csrf_token};

/// Small, so that oversized photos are cheap to generate.
const MAX_PHOTO_BYTES: u64 = 2048;
/// A valid cookie token (32 zero bytes, base64url): the form sends it back.
const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

type Outcome = Result<Submission, ReadFailure>;

/// One request through the CSRF middleware, the body limit and `read_review`, as the review
/// route does it; `None` if it took more than a few seconds.
fn read(content_type: &str, declared: Option<usize>, body: Vec<u8>) -> Option<Outcome> {
    let slot: Arc<Mutex<Option<Outcome>>> = Arc::default();
    let sink = slot.clone();
    let handler = move |Extension(csrf): Extension<CsrfToken>,
                        headers: HeaderMap,
                        multipart: Result<Multipart, MultipartRejection>| {
        let sink = sink.clone();
        async move {
            let outcome = read_review(&headers, multipart, Some(&csrf), MAX_PHOTO_BYTES).await;
            *sink.lock().unwrap() = Some(outcome);
        }
    };
    let limit = review_body_limit(MAX_PHOTO_BYTES) as usize;
    let app = Router::new()
        .route("/", post(handler).layer(DefaultBodyLimit::max(limit)))
        .layer(middleware::from_fn(csrf_token));
    let mut request = Request::post("/")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::COOKIE, format!("{CSRF_COOKIE}={TOKEN}"));
    if let Some(length) = declared {
        request = request.header(header::CONTENT_LENGTH, length);
    }
    let request = request.body(Body::from(body)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let answered = tokio::time::timeout(Duration::from_secs(10), app.oneshot(request)).await;
        answered.ok()?.unwrap();
        slot.lock().unwrap().take()
    })
}

/// The class of outcome, checking that every refusal says what is wrong.
fn class(outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(ReadFailure::Csrf) => "csrf",
        Err(ReadFailure::Refused(refusal)) => {
            assert!(refusal.form.message.is_some() && !refusal.form.errors.is_empty());
            match refusal.kind {
                RefusalKind::Malformed => "malformed",
                RefusalKind::TooLarge => "too-large",
                RefusalKind::Invalid | RefusalKind::Unavailable | RefusalKind::TooMany => {
                    "unexpected"
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Part {
    name: String,
    file_name: Option<String>,
    content: Vec<u8>,
}

fn text(name: &str, value: &str) -> Part {
    Part {
        name: name.to_owned(),
        file_name: None,
        content: value.as_bytes().to_vec(),
    }
}

fn body(boundary: &str, parts: &[Part]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend(format!("--{boundary}\r\n").bytes());
        let file_name = match &part.file_name {
            Some(file_name) => format!("; filename=\"{file_name}\""),
            None => String::new(),
        };
        let disposition = format!("form-data; name=\"{}\"{file_name}", part.name);
        body.extend(format!("Content-Disposition: {disposition}\r\n\r\n").bytes());
        body.extend(&part.content);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    body
}

fn content_type(boundary: &str) -> String {
    format!("multipart/form-data; boundary=\"{boundary}\"")
}

fn boundary() -> impl Strategy<Value = String> {
    "[0-9A-Za-z'()+_,./:=?-]{1,69}[0-9A-Za-z]"
}

/// A well-formed review form: the token first, then the fields and unknown ones in any order.
fn form() -> impl Strategy<Value = (Vec<Part>, [String; 3], Option<Vec<u8>>)> {
    let photo = prop::option::of(prop::collection::vec(
        any::<u8>(),
        0..MAX_PHOTO_BYTES as usize,
    ));
    let unknown = prop::collection::btree_map("x[a-z]{0,8}", ".{0,16}", 0..3);
    (any::<[String; 3]>(), photo, unknown).prop_flat_map(|(texts, photo, unknown)| {
        let mut parts = vec![
            text(field::USER_NAME, &texts[0]),
            text(field::RATING, &texts[1]),
            text(field::REVIEW_TEXT, &texts[2]),
        ];
        parts.extend(unknown.iter().map(|(name, value)| text(name, value)));
        parts.push(match &photo {
            Some(bytes) => Part {
                name: field::REVIEW_IMAGE.into(),
                file_name: Some("photo.jpg".into()),
                content: bytes.clone(),
            },
            // What a browser sends when no file was chosen.
            None => Part {
                name: field::REVIEW_IMAGE.into(),
                file_name: Some(String::new()),
                content: Vec::new(),
            },
        });
        Just(parts).prop_shuffle().prop_map(move |mut parts| {
            parts.insert(0, text(CSRF_FIELD, TOKEN));
            (parts, texts.clone(), photo.clone())
        })
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, &'static str),
    Delete(prop::sample::Index, usize),
    /// A copy of a stretch of the body somewhere else: duplicated headers, parts, boundaries.
    Copy(prop::sample::Index, usize, prop::sample::Index),
    LfOnly,
    HugeHeader(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let nasty = prop::sample::select(vec![
        "\r\n",
        "\n",
        "\r",
        "--",
        "\r\n--",
        "\"",
        ";",
        "\r\n\r\n",
        "name=\"rating\"",
        "filename=",
        "Content-Disposition: form-data\r\n",
        "\0",
        "\u{ff}",
        "\r\nContent-Type: text/html",
    ]);
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1..=u8::MAX).prop_map(|(at, x)| Mutation::Flip(at, x)),
        (any::<prop::sample::Index>(), nasty).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<prop::sample::Index>(), 1..64usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (
            any::<prop::sample::Index>(),
            1..256usize,
            any::<prop::sample::Index>()
        )
            .prop_map(|(from, n, to)| Mutation::Copy(from, n, to)),
        Just(Mutation::LfOnly),
        prop::sample::select(vec![1_000, 20_000, 200_000]).prop_map(Mutation::HugeHeader),
    ]
}

fn mutate(body: &mut Vec<u8>, mutation: &Mutation) {
    let len = body.len();
    match mutation {
        Mutation::Truncate(at) => body.truncate(at.index(len)),
        Mutation::Flip(at, x) => body[at.index(len)] ^= x,
        Mutation::Insert(at, s) => drop(body.splice(at.index(len)..at.index(len), s.bytes())),
        Mutation::Delete(at, n) => {
            let start = at.index(len);
            body.drain(start..(start + n).min(len));
        }
        Mutation::Copy(from, n, to) => {
            let start = from.index(len);
            let stretch = body[start..(start + n).min(len)].to_vec();
            let to = to.index(len);
            body.splice(to..to, stretch);
        }
        Mutation::LfOnly => {
            *body = String::from_utf8_lossy(body)
                .replace("\r\n", "\n")
                .into_bytes();
        }
        Mutation::HugeHeader(n) => {
            let line = format!("X-Long: {}\r\n", "a".repeat(*n));
            let at = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(0, |i| i + 2);
            body.splice(at..at, line.into_bytes());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_well_formed_review_form_reads_back_as_the_fields_sent(
        (parts, texts, photo) in form(),
        boundary in boundary(),
    ) {
        let body = body(&boundary, &parts);
        // A value containing the delimiter would end its part early: not a well-formed form.
        prop_assume!(!parts.iter().any(|p| p.content.windows(boundary.len() + 4)
            .any(|w| w == format!("\r\n--{boundary}").as_bytes())));
        let declared = Some(body.len());
        let submission = read(&content_type(&boundary), declared, body).unwrap().unwrap();
        let input = &submission.input;
        prop_assert_eq!([&input.user_name, &input.rating, &input.review_text],
            [&texts[0], &texts[1], &texts[2]]);
        prop_assert_eq!(submission.photo.map(|p| p.to_vec()), photo);
    }

    #[test]
    fn a_mangled_form_is_read_or_refused_never_a_panic_or_a_hang(
        (parts, _, _) in form(),
        boundary in boundary(),
        mutations in prop::collection::vec(mutation(), 1..4),
        declare_length in any::<bool>(),
    ) {
        let mut body = body(&boundary, &parts);
        for mutation in &mutations {
            mutate(&mut body, mutation);
            if body.is_empty() { break; }
        }
        let declared = declare_length.then_some(body.len());
        let outcome = read(&content_type(&boundary), declared, body);
        prop_assert!(outcome.is_some(), "the reader hung");
        prop_assert_ne!(class(&outcome.unwrap()), "unexpected");
    }

    #[test]
    fn arbitrary_bytes_under_any_content_type_are_refused_never_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        content_type in prop_oneof![
            boundary().prop_map(|b| content_type(&b)),
            Just("multipart/form-data".to_owned()),
            "[ -~]{0,40}",
        ],
    ) {
        let outcome = read(&content_type, Some(bytes.len()), bytes).unwrap();
        prop_assert!(["csrf", "malformed"].contains(&class(&outcome)), "{:?}", outcome);
    }

    #[test]
    fn a_text_field_sent_twice_is_refused_next_to_it(
        name in prop::sample::select(vec![field::USER_NAME, field::RATING, field::REVIEW_TEXT]),
        (first, second) in (".{0,8}", ".{0,8}"),
    ) {
        let parts = [text(CSRF_FIELD, TOKEN), text(name, &first), text(name, &second)];
        let outcome = read(&content_type("b"), None, body("b", &parts)).unwrap();
        let Err(ReadFailure::Refused(refusal)) = outcome else {
            return Err(TestCaseError::fail(format!("not refused: {outcome:?}")));
        };
        prop_assert_eq!(refusal.kind, RefusalKind::Malformed);
        prop_assert!(refusal.form.errors.get(name).is_some_and(|e| e.contains("more than once")));
    }

    #[test]
    fn a_photo_before_the_token_or_over_the_limit_is_never_read(
        size in 0..3 * MAX_PHOTO_BYTES as usize,
        token_first in any::<bool>(),
    ) {
        let photo = Part {
            name: field::REVIEW_IMAGE.into(),
            file_name: Some("p.png".into()),
            content: vec![0x89; size],
        };
        let token = text(CSRF_FIELD, TOKEN);
        let parts = if token_first { [token, photo] } else { [photo, token] };
        let outcome = read(&content_type("b"), None, body("b", &parts)).unwrap();
        let expected = match (token_first, size as u64 > MAX_PHOTO_BYTES) {
            (false, _) => "csrf",
            (true, true) => "too-large",
            (true, false) => "ok",
        };
        prop_assert_eq!(class(&outcome), expected);
    }
}

/// Corpus bodies name their boundary on their first line (`--<boundary>`) and send [`TOKEN`].
#[test]
fn every_multipart_corpus_input_gets_its_expected_outcome() {
    crate::corpus::check("multipart", |bytes| {
        let first_line = bytes.split(|b| *b == b'\r' || *b == b'\n').next().unwrap();
        let boundary = String::from_utf8_lossy(first_line.strip_prefix(b"--").unwrap_or(b"x"));
        let outcome = read(&content_type(&boundary), Some(bytes.len()), bytes.to_vec());
        outcome.as_ref().map_or("hung", class).to_owned()
    });
}
