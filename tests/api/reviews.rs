//! Reviews and their photos, on SQLite and PostgreSQL.

use futures_util::stream;
use reqwest::StatusCode;
use reqwest::multipart::Part;
use rstest::rstest;
use rstest_reuse::apply;

use crate::helpers::both_backends;

use crate::helpers::{Backend, FieldCase, PHONE_PHOTO, TestApp, photo_part};

/// (case, file bytes, file name, declared type, expected status, expected message)
type PhotoCase<'a> = (&'a str, Vec<u8>, &'a str, &'a str, StatusCode, &'a str);

/// The `src` of the first review thumbnail and the `href` of the link around it.
fn photo_urls(html: &str) -> (String, String) {
    let attr = |from: usize, name: &str| {
        let marker = format!("{name}=\"");
        let start = html[from..].find(&marker).unwrap() + from + marker.len();
        let end = html[start..].find('"').unwrap() + start;
        (html[start..end].to_owned(), end)
    };
    let img = html.find("class=\"review-photo").expect("a review photo");
    let link_start = html[..img].rfind("<a ").unwrap();
    let (href, _) = attr(link_start, "href");
    let (src, _) = attr(img, "src");
    (src, href)
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(width, height, image::Rgb([200, 40, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A few hundred bytes whose PNG header claims 30,000 × 30,000 pixels.
fn png_bomb() -> Vec<u8> {
    let mut bytes = png(8, 8);
    bytes[16..20].copy_from_slice(&30_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&30_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[apply(both_backends)]
async fn a_review_with_a_phone_photo_shows_stars_and_a_photo_without_exif(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // The fixture is a real camera-style JPEG carrying GPS coordinates and orientation 6.
    let source_exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(PHONE_PHOTO))
        .expect("the fixture has EXIF");
    assert!(
        source_exif
            .get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
            .is_some()
    );

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
    let response = app.post_review(id, form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // Back at the restaurant's top, where "Review added" and the new average show (it used to
    // jump to the review in the list, with the average off-screen: issue 10).
    assert_eq!(response.headers()["location"], format!("/{id}/").as_str());

    let (status, html) = app.get_text(&format!("/{id}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Ana") && html.contains("Lovely soup."));
    assert!(html.contains("4.0") && html.contains("1 review"));
    assert_eq!(
        html.matches("star star-full").count(),
        4 + 4,
        "4 stars for the restaurant and 4 for the review"
    );
    assert!(html.contains("star star-empty"));

    let (thumbnail_url, full_url) = photo_urls(&html);
    assert!(
        full_url.ends_with(".jpg"),
        "named by detected type: {full_url}"
    );
    let anonymous = reqwest::Client::new();
    for url in [&thumbnail_url, &full_url] {
        let response = anonymous.get(app.url(url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(
            response.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age=31536000")
        );
        let bytes = response.bytes().await.unwrap();
        let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&bytes[..]));
        assert!(exif.is_err(), "{url} still carries EXIF");
        assert!(
            !bytes.windows(4).any(|w| w == b"Exif"),
            "{url} contains an Exif marker"
        );
    }
    // Orientation 6 was applied: the stored 640×480 picture is upright at 480×640, with the
    // red marker from the stored top-left corner now at the top right.
    let full = anonymous
        .get(app.url(&full_url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let image = image::load_from_memory(&full).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (480, 640));
    let top_right = image.get_pixel(470, 10);
    assert!(
        top_right[0] > 150 && top_right[1] < 90,
        "marker not rotated: {top_right:?}"
    );

    assert_eq!(app.image_names().await.len(), 1);
    assert_eq!(
        app.stored_photo_files().len(),
        2,
        "display image and thumbnail"
    );
}

#[apply(both_backends)]
async fn averages_counts_and_newest_first_follow_the_reviews(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Average Joe's").await;
    for (name, rating) in [("First", "5"), ("Second", "4"), ("Third", "4")] {
        let form = app
            .review_form(
                id,
                &[("user_name", name), ("rating", rating), ("review_text", "")],
            )
            .await;
        assert_eq!(
            app.post_review(id, form).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let (_, html) = app.get_text(&format!("/{id}/")).await;
    assert!(
        html.contains("4.3") && html.contains("3 reviews"),
        "average of 5, 4, 4"
    );
    let third = html.find("Third").unwrap();
    let first = html.find("First").unwrap();
    assert!(third < first, "newest review first");
    let (_, index) = app.get_text("/").await;
    assert!(index.contains("4.3") && index.contains("3 reviews"));
    assert!(
        index.contains("star star-half"),
        "4.3 rounds to four and a half stars"
    );
}

#[apply(both_backends)]
async fn a_review_of_script_tags_renders_as_text(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("<b>Bold</b> & Co").await;
    let form = app
        .review_form(
            id,
            &[
                ("user_name", "<img src=x>"),
                ("rating", "1"),
                ("review_text", "<script>alert(1)</script>"),
            ],
        )
        .await;
    assert_eq!(
        app.post_review(id, form).await.status(),
        StatusCode::SEE_OTHER
    );
    let (_, html) = app.get_text(&format!("/{id}/")).await;
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(!html.contains("<img src=x>"));
    assert!(!html.contains("<b>Bold</b>"));
    let (_, index) = app.get_text("/").await;
    assert!(!index.contains("<b>Bold</b>"));
}

#[apply(both_backends)]
async fn bad_review_fields_are_refused_with_the_input_kept_and_nothing_stored(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Strict Bistro").await;
    let long_name = "u".repeat(21);
    let text_over = "t".repeat(501);
    let text_huge = "t".repeat(10_000);
    // (case, fields, expected message)
    let cases: Vec<FieldCase> = vec![
        (
            "missing name",
            vec![("rating", "3"), ("review_text", "kept text")],
            "Your name is required",
        ),
        (
            "missing rating",
            vec![("user_name", "Kept"), ("review_text", "kept text")],
            "Choose a rating",
        ),
        (
            "empty rating",
            vec![("user_name", "Kept"), ("rating", "")],
            "Choose a rating",
        ),
        (
            "rating 0",
            vec![("user_name", "Kept"), ("rating", "0")],
            "from 1 to 5",
        ),
        (
            "rating 6",
            vec![("user_name", "Kept"), ("rating", "6")],
            "from 1 to 5",
        ),
        (
            "rating 9",
            vec![("user_name", "Kept"), ("rating", "9")],
            "from 1 to 5",
        ),
        (
            "rating abc",
            vec![("user_name", "Kept"), ("rating", "abc")],
            "from 1 to 5",
        ),
        (
            "name one over",
            vec![("user_name", &long_name), ("rating", "3")],
            "at most 20 characters",
        ),
        (
            "name with a right-to-left override",
            vec![("user_name", "Bob\u{202E}gnp.exe"), ("rating", "3")],
            "invisible or direction-changing characters",
        ),
        (
            "name with a zero width space",
            vec![("user_name", "Ad\u{200B}min"), ("rating", "3")],
            "invisible or direction-changing characters",
        ),
        (
            "review one over",
            vec![
                ("user_name", "Kept"),
                ("rating", "3"),
                ("review_text", &text_over),
            ],
            "at most 500 characters (this one has 501)",
        ),
        (
            "review of 10,000 characters",
            vec![
                ("user_name", "Kept"),
                ("rating", "3"),
                ("review_text", &text_huge),
            ],
            "(this one has 10000)",
        ),
    ];
    for (case, fields, message) in cases {
        let form = app.review_form(id, &fields).await;
        let response = app.post_review(id, form).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}"
        );
        let html = response.text().await.unwrap();
        assert!(html.contains(message), "{case}: expected {message:?}");
        assert!(html.contains("Review not added"), "{case}");
        assert!(
            html.contains("<details class=\"review-form mb-4\" open>"),
            "{case}: the form stays open"
        );
        // Typed text is shown again; an invalid rating has no radio button to re-select.
        for (_, value) in fields
            .iter()
            .filter(|(name, value)| *name != "rating" && !value.is_empty())
        {
            assert!(html.contains(value), "{case}: {value:?} is kept");
        }
    }
    assert_eq!(app.review_count().await, 0);
    assert_eq!(app.stored_photo_files().len(), 0);
}

#[apply(both_backends)]
async fn bad_photos_are_refused_and_nothing_is_stored(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Picky Place").await;
    let jpeg = PHONE_PHOTO;
    let whole_png = png(300, 200);
    let cases: Vec<PhotoCase> = vec![
        (
            "plain text",
            b"hello, I am text".to_vec(),
            "notes.txt",
            "text/plain",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a photo",
        ),
        (
            "text renamed .png",
            b"hello, I am text".to_vec(),
            "photo.png",
            "image/png",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a photo",
        ),
        (
            "SVG with script",
            br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec(),
            "x.svg",
            "image/svg+xml",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a photo",
        ),
        (
            "HTML renamed .png",
            b"<!doctype html><script>alert(1)</script>".to_vec(),
            "x.png",
            "image/png",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a photo",
        ),
        (
            "GIF",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            "x.gif",
            "image/gif",
            StatusCode::UNPROCESSABLE_ENTITY,
            "GIF images are not accepted",
        ),
        (
            "truncated JPEG",
            jpeg[..jpeg.len() / 2].to_vec(),
            "cut.jpg",
            "image/jpeg",
            StatusCode::UNPROCESSABLE_ENTITY,
            "damaged or incomplete",
        ),
        (
            "truncated PNG",
            whole_png[..whole_png.len() / 2].to_vec(),
            "cut.png",
            "image/png",
            StatusCode::UNPROCESSABLE_ENTITY,
            "damaged or incomplete",
        ),
        (
            "decompression bomb",
            png_bomb(),
            "bomb.png",
            "image/png",
            StatusCode::UNPROCESSABLE_ENTITY,
            "too many pixels",
        ),
        (
            "empty file with a name",
            Vec::new(),
            "empty.jpg",
            "image/jpeg",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a photo",
        ),
    ];
    for (case, bytes, file_name, mime, expected, message) in cases {
        let form = app
            .review_form(
                id,
                &[
                    ("user_name", "Kept"),
                    ("rating", "5"),
                    ("review_text", "kept text"),
                ],
            )
            .await
            .part("reviewImage", photo_part(&bytes, file_name, mime));
        let response = app.post_review(id, form).await;
        assert_eq!(response.status(), expected, "{case}");
        let html = response.text().await.unwrap();
        assert!(html.contains(message), "{case}: expected {message:?}");
        assert!(
            html.contains("kept text") && html.contains("value=\"Kept\""),
            "{case}: input kept"
        );
    }
    assert_eq!(app.review_count().await, 0);
    assert_eq!(app.stored_photo_files().len(), 0, "no orphan photo");
}

#[apply(both_backends)]
async fn malformed_review_posts_get_a_clear_4xx_and_store_nothing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Robust Diner").await;
    let token = app.csrf_token(&format!("/{id}/")).await;
    let boundary = "XBOUNDARYX";
    let part = |name: &str, value: &[u8]| {
        [
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
            value,
            b"\r\n",
        ]
        .concat()
    };
    let body =
        |parts: Vec<Vec<u8>>| [parts.concat(), format!("--{boundary}--\r\n").into_bytes()].concat();
    let multipart_type = format!("multipart/form-data; boundary={boundary}");
    let cases: Vec<(&str, String, Vec<u8>, StatusCode)> = vec![
        (
            "duplicate rating",
            multipart_type.clone(),
            body(vec![
                part("csrfmiddlewaretoken", token.as_bytes()),
                part("user_name", b"A"),
                part("rating", b"5"),
                part("rating", b"1"),
            ]),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalid UTF-8 in the review",
            multipart_type.clone(),
            body(vec![
                part("csrfmiddlewaretoken", token.as_bytes()),
                part("user_name", b"A"),
                part("rating", b"5"),
                part("review_text", &[0xFF, 0xFE, 0x41]),
            ]),
            StatusCode::BAD_REQUEST,
        ),
        (
            "truncated multipart",
            multipart_type.clone(),
            [
                part("csrfmiddlewaretoken", token.as_bytes()),
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"user_name\"\r\n\r\nA"
                )
                .into_bytes(),
            ]
            .concat(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "garbage body",
            multipart_type.clone(),
            b"this is not multipart at all".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no boundary",
            "multipart/form-data".to_owned(),
            body(vec![part("user_name", b"A")]),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not multipart",
            "application/x-www-form-urlencoded".to_owned(),
            format!("csrfmiddlewaretoken={token}&user_name=A&rating=5").into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (case, content_type, body, expected) in cases {
        let response = app
            .client
            .post(app.url(&format!("/review/{id}")))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{case}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains("Review not added"),
            "{case}: the page explains"
        );
    }
    assert_eq!(app.review_count().await, 0);
}

#[apply(both_backends)]
async fn a_review_for_an_unknown_restaurant_is_404_and_stores_nothing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Real One").await;
    let form = app
        .review_form(id, &[("user_name", "A"), ("rating", "5")])
        .await;
    let response = app
        .client
        .post(app.url("/review/987654"))
        .multipart(form.part(
            "reviewImage",
            photo_part(PHONE_PHOTO, "a.jpg", "image/jpeg"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.review_count().await, 0);
    assert_eq!(app.stored_photo_files().len(), 0);
}

#[apply(both_backends)]
async fn a_form_without_a_photo_stores_a_review_without_one(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("No Photo Needed").await;
    // Browsers send an empty, unnamed file part when no file was chosen.
    let form = app
        .review_form(id, &[("user_name", "A"), ("rating", "2")])
        .await
        .part(
            "reviewImage",
            Part::bytes(Vec::new())
                .file_name("")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    assert_eq!(
        app.post_review(id, form).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.review_count().await, 1);
    assert!(app.image_names().await.is_empty());
}

#[apply(both_backends)]
async fn oversized_photos_are_refused_with_the_input_kept_and_nothing_stored(
    #[case] backend: Backend,
) {
    // Size limits are per app; a small one keeps this test fast.
    const LIMIT: u64 = 256 * 1024;
    let Some(app) = TestApp::spawn_with(backend, |s| s.http.max_photo_bytes = LIMIT).await else {
        return;
    };
    let id = app.create_restaurant("Size Matters").await;
    let big = vec![0xFFu8; LIMIT as usize + 1];

    // Declared length: the photo is refused from the header, without buffering it.
    let form = app
        .review_form(id, &[("user_name", "Kept"), ("rating", "5")])
        .await
        .part(
            "reviewImage",
            photo_part(
                &vec![0u8; 2 * LIMIT as usize + 400_000],
                "big.jpg",
                "image/jpeg",
            ),
        );
    let response = app.post_review(id, form).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("The photo is too big")
    );

    // Streamed without a length: refused as soon as the photo passes the limit, input kept.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = Part::stream(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .file_name("big.jpg")
        .mime_str("image/jpeg")
        .unwrap();
    let form = app
        .review_form(
            id,
            &[
                ("user_name", "Kept"),
                ("rating", "5"),
                ("review_text", "kept text"),
            ],
        )
        .await
        .part("reviewImage", streamed);
    let response = app.post_review(id, form).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let html = response.text().await.unwrap();
    assert!(html.contains("The photo is too big: the limit is 256 KiB."));
    assert!(html.contains("kept text"));

    assert_eq!(app.review_count().await, 0);
    assert_eq!(app.stored_photo_files().len(), 0);
}

#[apply(both_backends)]
async fn a_review_posted_while_the_database_is_down_comes_back_as_typed_with_a_503(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Dark Kitchen").await;
    let form = app
        .review_form(
            id,
            &[
                ("user_name", "Patient Pat"),
                ("rating", "5"),
                ("review_text", "Typed during the outage."),
            ],
        )
        .await
        .part(
            "reviewImage",
            photo_part(PHONE_PHOTO, "soup.jpg", "image/jpeg"),
        );
    // The app's pool is this one: closing it is the database going away.
    app.db.close().await;

    let response = app.post_review(id, form).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.unwrap();
    for kept in [
        "Patient Pat",
        "Typed during the outage.",
        "could not be saved just now",
    ] {
        assert!(page.contains(kept), "{kept:?} missing: {page}");
    }
    assert!(page.contains("Choose your photo again"), "{page}");
    assert!(
        page.contains(r#"value="5" required checked"#),
        "the rating is kept: {page}"
    );
    assert!(
        app.stored_photo_files().is_empty(),
        "no photo is stored for a review that was not"
    );
}
