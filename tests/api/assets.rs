//! Bytes on the wire: compressed pages, precompressed static assets under hashed URLs, photos
//! sent as they are.

use std::io::Read;

use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, ETAG, IF_NONE_MATCH,
    LOCATION, VARY,
};
use reqwest::{Response, StatusCode};

use crate::helpers::{Backend, PHONE_PHOTO, TestApp, photo_part};

const ASSETS: [(&str, &[u8]); 4] = [
    (
        "bootstrap.min.css",
        include_bytes!("../../static/vendor/bootstrap-5.3.9.min.css"),
    ),
    ("app.css", include_bytes!("../../static/app.css")),
    ("app.js", include_bytes!("../../static/app.js")),
    ("favicon.svg", include_bytes!("../../static/favicon.svg")),
];

async fn get_accepting(app: &TestApp, path: &str, accept_encoding: &str) -> Response {
    app.client
        .get(app.url(path))
        .header(ACCEPT_ENCODING, accept_encoding)
        .send()
        .await
        .expect("GET succeeds")
}

fn header(response: &Response, name: impl reqwest::header::AsHeaderName) -> &str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

/// The body as sent, decoded by its `Content-Encoding`.
async fn decoded(response: Response) -> Vec<u8> {
    let encoding = header(&response, CONTENT_ENCODING).to_owned();
    let raw = response.bytes().await.unwrap();
    let mut out = Vec::new();
    match encoding.as_str() {
        "br" => {
            brotli::BrotliDecompress(&mut &raw[..], &mut out).expect("valid brotli");
        }
        "gzip" => {
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        "" => out = raw.to_vec(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

/// The `href`/`src` of every `/static/` link on a page.
fn static_links(html: &str) -> Vec<String> {
    html.match_indices("\"/static/")
        .map(|(at, _)| {
            let rest = &html[at + 1..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

async fn hashed_url(app: &TestApp, name: &str) -> String {
    let (_, html) = app.get_text("/").await;
    let (stem, ext) = name.rsplit_once('.').unwrap();
    static_links(&html)
        .into_iter()
        .find(|link| link.starts_with(&format!("/static/{stem}.")) && link.ends_with(ext))
        .unwrap_or_else(|| panic!("the page links {name}"))
}

#[tokio::test]
async fn pages_come_in_brotli_or_gzip_as_the_client_prefers_and_decode_to_the_page() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.create_restaurant("Compressed Café").await;
    for (accept, expected) in [
        ("br", "br"),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip;q=0", ""),
    ] {
        for path in ["/", "/create", "/missing/page"] {
            let response = get_accepting(&app, path, accept).await;
            assert_eq!(
                header(&response, CONTENT_ENCODING),
                expected,
                "{path} {accept}"
            );
            if !expected.is_empty() {
                assert!(
                    header(&response, VARY).contains("accept-encoding"),
                    "{path}"
                );
            }
            let csp = header(&response, CONTENT_SECURITY_POLICY).to_owned();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
            let html = String::from_utf8(decoded(response).await).unwrap();
            assert!(html.starts_with("<!doctype html>"), "{path} {accept}");
            assert!(html.trim_end().ends_with("</html>"), "{path} {accept}");
        }
    }
    let (_, html) = app.get_text("/").await;
    assert!(html.contains("Compressed Café"));
}

#[tokio::test]
async fn nothing_is_compressed_for_a_client_that_does_not_ask() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.headers().contains_key(CONTENT_ENCODING));
    for (name, bytes) in ASSETS {
        for path in [format!("/static/{name}"), hashed_url(&app, name).await] {
            let response = app.get(&path).await;
            assert!(!response.headers().contains_key(CONTENT_ENCODING), "{path}");
            assert_eq!(response.bytes().await.unwrap(), bytes, "{path}");
        }
    }
}

/// The compressed copies are made in the background at startup; until then assets are sent
/// uncompressed (a request never waits for them).
async fn compressed_copies_made() {
    let started = std::time::Instant::now();
    while !restaurant_review::web::assets::compressed_ready() {
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn static_assets_come_precompressed_and_decode_to_the_original_bytes() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    compressed_copies_made().await;
    for (name, bytes) in ASSETS {
        for path in [format!("/static/{name}"), hashed_url(&app, name).await] {
            for encoding in ["br", "gzip"] {
                let response = get_accepting(&app, &path, encoding).await;
                assert_eq!(response.status(), StatusCode::OK, "{path}");
                assert_eq!(header(&response, CONTENT_ENCODING), encoding, "{path}");
                assert_eq!(header(&response, VARY), "accept-encoding", "{path}");
                let sent = response
                    .content_length()
                    .expect("a stored body has a length");
                assert!(sent < bytes.len() as u64, "{path} {encoding}: {sent} bytes");
                assert_eq!(decoded(response).await, bytes, "{path} {encoding}");
            }
        }
    }
}

#[tokio::test]
async fn hashed_urls_are_immutable_and_a_stale_hash_redirects_to_the_current_one() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let url = hashed_url(&app, "app.css").await;
    let response = app.get(&url).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );

    let stale = app.get("/static/app.00000000.css").await;
    assert_eq!(stale.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&stale, LOCATION), url);
    assert_eq!(header(&stale, CACHE_CONTROL), "no-store");

    for unknown in ["/static/nope.00000000.css", "/static/app.notahash.css"] {
        assert_eq!(
            app.get(unknown).await.status(),
            StatusCode::NOT_FOUND,
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn plain_urls_are_cached_briefly_and_revalidate_with_their_etag() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    compressed_copies_made().await;
    for encoding in ["", "br", "gzip"] {
        let first = get_accepting(&app, "/static/app.js", encoding).await;
        assert_eq!(header(&first, CACHE_CONTROL), "public, max-age=300");
        let etag = header(&first, ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        let again = app
            .client
            .get(app.url("/static/app.js"))
            .header(ACCEPT_ENCODING, encoding)
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{encoding}");
        assert_eq!(header(&again, ETAG), etag);
        assert!(again.bytes().await.unwrap().is_empty());

        let changed = app
            .client
            .get(app.url("/static/app.js"))
            .header(ACCEPT_ENCODING, encoding)
            .header(IF_NONE_MATCH, "\"someotherversion\"")
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK, "{encoding}");
    }
    let identity = app.get("/static/app.js").await;
    let br = get_accepting(&app, "/static/app.js", "br").await;
    assert_ne!(
        header(&identity, ETAG),
        header(&br, ETAG),
        "each encoding is its own representation"
    );
}

#[tokio::test]
async fn pages_link_hashed_assets_that_answer_without_inline_code() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let id = app.create_restaurant("Linked").await;
    for path in [
        "/".to_owned(),
        format!("/{id}/"),
        "/missing/page".to_owned(),
    ] {
        let (_, html) = app.get_text(&path).await;
        let links = static_links(&html);
        assert_eq!(links.len(), ASSETS.len(), "{path}: {links:?}");
        for link in links {
            let (name, _) = ASSETS
                .iter()
                .find(|(name, _)| {
                    let (stem, ext) = name.rsplit_once('.').unwrap();
                    let hash = link
                        .strip_prefix(&format!("/static/{stem}."))
                        .and_then(|rest| rest.strip_suffix(&format!(".{ext}")));
                    hash.is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                })
                .unwrap_or_else(|| panic!("{path}: {link} is not a hashed asset URL"));
            let response = get_accepting(&app, &link, "br, gzip").await;
            assert_eq!(response.status(), StatusCode::OK, "{link}");
            assert!(
                header(&response, CONTENT_SECURITY_POLICY).contains("script-src 'self'"),
                "{name}"
            );
        }
        assert!(
            !html.contains("<script>") && !html.contains(" style=\""),
            "{path}: no inline script or style"
        );
    }
}

#[tokio::test]
async fn photos_are_sent_as_stored_whatever_the_client_accepts() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let id = app.create_restaurant("Photo Place").await;
    let form = app
        .review_form(
            id,
            &[
                ("user_name", "Ana"),
                ("rating", "4"),
                ("review_text", "Lovely soup."),
            ],
        )
        .await
        .part(
            "reviewImage",
            photo_part(PHONE_PHOTO, "IMG_0001.JPG", "image/jpeg"),
        );
    assert_eq!(
        app.post_review(id, form).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, html) = app.get_text(&format!("/{id}/")).await;
    let at = html.find("src=\"/photos/").expect("a photo on the page") + "src=\"".len();
    let photo = &html[at..at + html[at..].find('"').unwrap()];

    let plain = app.get(photo).await.bytes().await.unwrap();
    let response = get_accepting(&app, photo, "br, gzip").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("image/"));
    assert!(!response.headers().contains_key(CONTENT_ENCODING));
    assert_eq!(response.bytes().await.unwrap(), plain);
}
