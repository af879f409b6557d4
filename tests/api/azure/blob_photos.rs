//! Photos in Blob Storage through the managed identity, as on App Service: the real binary
//! signs in to Azurite (HTTPS, `--oauth basic`, so expired or wrong-audience tokens are
//! refused) with tokens from the fake identity endpoint. The database is the embedded one.

use std::time::{Duration, Instant};

use crate::helpers::azurite::Azurite;
use crate::helpers::fake_identity::FakeIdentity;
use crate::helpers::process::{AppProcess, add_restaurant, browser, get_page, post_review_form};
use crate::helpers::{PHONE_PHOTO, photo_part};
use reqwest::StatusCode;

const STORAGE_RESOURCE: &str = "https://storage.azure.com";

struct Rig {
    azurite: Azurite,
    identity: FakeIdentity,
}

impl Rig {
    async fn start(token_lifetime: Duration) -> Option<Self> {
        let azurite = Azurite::start().await?;
        let identity = FakeIdentity::start(token_lifetime).await;
        Some(Self { azurite, identity })
    }

    /// Creates `container` and starts the app on it. The container exists before the app
    /// starts, as deploy/azure.sh provisions it (Azurite starts empty): private, except for the
    /// `public` URL mode, whose container allows anonymous reads as the tutorial's does.
    async fn start_app(&self, container: &str, mode: &str) -> AppProcess {
        self.azurite
            .create_container(container, &self.storage_token(), mode == "public")
            .await;
        let endpoint = self.azurite.endpoint();
        let ca = self.azurite.ca_file().display().to_string();
        AppProcess::start(&[
            ("IDENTITY_ENDPOINT", &self.identity.app_service_url),
            ("IDENTITY_HEADER", self.identity.header_secret()),
            ("AZURE_CLIENT_ID", self.identity.client_id()),
            ("STORAGE_ACCOUNT_NAME", &endpoint),
            ("STORAGE_CONTAINER_NAME", container),
            ("PHOTO_URL_MODE", mode),
            ("STORAGE_CA_CERT_FILE", &ca),
        ])
    }

    fn storage_token(&self) -> String {
        self.identity.issue(STORAGE_RESOURCE)
    }

    async fn blobs(&self, container: &str) -> Vec<String> {
        self.azurite
            .blob_names(container, &self.storage_token())
            .await
    }
}

/// Adds a restaurant and returns its page's path.
async fn restaurant_page(client: &reqwest::Client, app: &AppProcess, name: &str) -> String {
    let response = add_restaurant(client, app, name).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Posts a review (with the phone photo when `photo`), returning the status and the page.
async fn post_review(
    client: &reqwest::Client,
    app: &AppProcess,
    restaurant: &str,
    text: &str,
    photo: bool,
) -> (StatusCode, String) {
    let response = post_review_form(client, app, restaurant, |form| {
        let form = form
            .text("user_name", "Blob Fan")
            .text("rating", "5")
            .text("review_text", text.to_owned());
        if photo {
            form.part(
                "reviewImage",
                photo_part(PHONE_PHOTO, "IMG_0042.JPG", "image/jpeg"),
            )
        } else {
            form
        }
    })
    .await;
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// The `src` of the first thumbnail and the `href` of the link around it, HTML-unescaped.
fn photo_urls(html: &str) -> Option<(String, String)> {
    let img = html.find("class=\"review-photo")?;
    let attr = |from: usize, name: &str| {
        let marker = format!("{name}=\"");
        let start = html[from..].find(&marker).unwrap() + from + marker.len();
        let end = html[start..].find('"').unwrap() + start;
        html[start..end].replace("&#38;", "&").replace("&amp;", "&")
    };
    let link = html[..img].rfind("<a ").unwrap();
    Some((attr(img, "src"), attr(link, "href")))
}

fn assert_jpeg_without_exif(bytes: &[u8], what: &str) {
    assert!(bytes.starts_with(&[0xFF, 0xD8]), "{what} is not a JPEG");
    assert!(
        exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(bytes))
            .is_err(),
        "{what} carries EXIF"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_show_without_credentials_in_each_url_mode() {
    let Some(rig) = Rig::start(Duration::from_secs(3600)).await else {
        return;
    };
    // `public` is the tutorial's setup: a container that allows anonymous reads (start_app
    // creates it so); the other modes' containers are private.
    let anonymous = rig.azurite.anonymous_client();
    for (mode, container) in [
        ("public", "photos-public"),
        ("sas", "photos-sas"),
        ("proxy", "photos-proxy"),
    ] {
        let mut app = rig.start_app(container, mode).await;
        assert!(app.wait_healthy().await, "{mode}: {}", app.output());
        let client = browser();
        let restaurant = restaurant_page(&client, &app, &format!("Blob {mode}")).await;
        let (status, _) = post_review(&client, &app, &restaurant, "With a photo.", true).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{mode}");

        // Both renditions are in the container, typed and cacheable.
        let blobs = rig.blobs(container).await;
        assert_eq!(blobs.len(), 2, "{mode}: {blobs:?}");
        let display = blobs
            .iter()
            .find(|b| !b.starts_with("thumbs/"))
            .unwrap()
            .clone();
        assert!(display.ends_with(".jpg"), "{display}");
        let blob_url = format!("{}/{container}/{display}", rig.azurite.endpoint());
        let head = anonymous
            .head(&blob_url)
            .bearer_auth(rig.storage_token())
            .header("x-ms-version", "2021-08-06")
            .send()
            .await
            .unwrap();
        assert_eq!(head.headers()["content-type"], "image/jpeg", "{mode}");
        assert!(
            head.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age=31536000"),
            "{mode}"
        );

        // The page's links work for anyone: no cookies, no credentials.
        let page = get_page(&client, &app, &restaurant).await;
        let (thumbnail, full) = photo_urls(&page).expect("a photo on the page");
        for url in [&thumbnail, &full] {
            let absolute = if url.starts_with("https://") {
                url.clone()
            } else {
                app.url(url)
            };
            let response = anonymous.get(&absolute).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{mode}: {absolute}");
            assert_eq!(response.headers()["content-type"], "image/jpeg", "{mode}");
            assert_jpeg_without_exif(&response.bytes().await.unwrap(), &absolute);
        }
        match mode {
            "public" => assert_eq!(full, blob_url),
            "sas" => {
                assert!(
                    full.starts_with(&blob_url) && full.contains("sig=") && full.contains("skoid="),
                    "a user-delegation SAS: {full}"
                );
                assert!(full.contains("sp=r"), "read-only: {full}");
            }
            _ => assert!(full.starts_with("/photos/"), "{full}"),
        }
        if mode != "public" {
            // The container stays private: the bare blob URL is refused.
            let bare = anonymous.get(&blob_url).send().await.unwrap();
            assert_eq!(bare.status(), StatusCode::FORBIDDEN, "{mode}");
        }
        // The page allows images from the storage account only when it links there.
        let csp =
            client.get(app.url("/")).send().await.unwrap().headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned();
        assert_eq!(
            csp.contains(&format!("https://127.0.0.1:{}", rig.azurite.port)),
            mode != "proxy",
            "{mode}: {csp}"
        );
        app.sigterm().await;
        let output = app.output();
        assert!(!output.contains(rig.identity.header_secret()));
        for token in rig.identity.tokens() {
            assert!(
                !output.contains(&token) && !page.contains(&token),
                "{mode}: a token leaked"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_fails_reviews_cleanly_and_leaves_no_orphans() {
    let Some(mut rig) = Rig::start(Duration::from_secs(3600)).await else {
        return;
    };
    let mut app = rig.start_app("photos", "sas").await;
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let with_photos = restaurant_page(&client, &app, "Photo Spot").await;
    let without_photos = restaurant_page(&client, &app, "Text Only").await;
    assert_eq!(
        post_review(&client, &app, &with_photos, "before", true)
            .await
            .0,
        StatusCode::SEE_OTHER
    );

    rig.azurite.stop();
    let (status, page) =
        post_review(&client, &app, &with_photos, "typed during the outage", true).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.contains("could not be stored just now") && page.contains("typed during the outage"),
        "clear message, input kept"
    );
    // Pages still render; reviews without photos can still be posted.
    assert_eq!(
        client
            .get(app.url(&without_photos))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client.get(app.url("/")).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        post_review(
            &client,
            &app,
            &without_photos,
            "no photo, no problem",
            false
        )
        .await
        .0,
        StatusCode::SEE_OTHER
    );

    rig.azurite.resume().await;
    assert_eq!(
        post_review(&client, &app, &with_photos, "after", true)
            .await
            .0,
        StatusCode::SEE_OTHER
    );
    let page = get_page(&client, &app, &with_photos).await;
    assert!(
        !page.contains("typed during the outage"),
        "nothing half-saved"
    );

    // Every blob belongs to a review and every review's photo exists: two reviews with photos,
    // two renditions each.
    let mut blobs = rig.blobs("photos").await;
    blobs.sort();
    let mut linked: Vec<String> = page
        .match_indices("/photos/")
        .filter_map(|(i, _)| {
            page[i + "/photos/".len()..]
                .split(['?', '"'])
                .next()
                .map(str::to_owned)
        })
        .collect();
    linked.sort();
    linked.dedup();
    assert_eq!(linked, blobs, "the page links exactly the stored blobs");
    assert_eq!(blobs.len(), 4, "{blobs:?}");
    app.sigterm().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_second_tokens_never_fail_an_upload_over_several_minutes() {
    let Some(rig) = Rig::start(Duration::from_secs(60)).await else {
        return;
    };
    let mut app = rig.start_app("photos", "sas").await;
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let restaurant = restaurant_page(&client, &app, "Soak Kitchen").await;
    let started = Instant::now();
    let (mut uploads, mut failures) = (0, Vec::new());
    while started.elapsed() < Duration::from_secs(190) {
        let (status, _) = post_review(
            &client,
            &app,
            &restaurant,
            &format!("upload {uploads}"),
            true,
        )
        .await;
        uploads += 1;
        if status != StatusCode::SEE_OTHER {
            failures.push(format!("{status} at {:?}", started.elapsed()));
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {uploads} uploads failed: {failures:?}",
        failures.len()
    );
    assert!(
        rig.identity.minted() >= 4,
        "tokens were replaced: {}",
        rig.identity.minted()
    );
    assert_eq!(rig.blobs("photos").await.len(), 2 * uploads);
    app.sigterm().await;
    let output = app.output();
    assert!(
        !output.contains("401 Unauthorized")
            && !output.contains("403 Forbidden")
            && !output.contains("AuthenticationFailed"),
        "storage refused a token:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_storage_account_stops_startup_with_a_clear_message() {
    let identity = FakeIdentity::start(Duration::from_secs(3600)).await;
    let closed_port = crate::helpers::process::free_port();
    let mut app = AppProcess::start(&[
        ("IDENTITY_ENDPOINT", &identity.app_service_url),
        ("IDENTITY_HEADER", identity.header_secret()),
        ("AZURE_CLIENT_ID", identity.client_id()),
        (
            "STORAGE_ACCOUNT_NAME",
            &format!("https://127.0.0.1:{closed_port}/devstoreaccount1"),
        ),
    ]);
    let status = app.wait_exit(Duration::from_secs(60)).await.expect("stops");
    assert!(!status.success());
    let output = app.output();
    assert!(
        output.contains("photo storage is not usable")
            && output.contains("cannot reach Blob Storage"),
        "{output}"
    );
    for token in identity.tokens() {
        assert!(!output.contains(&token));
    }
}
