//! Moderators deleting photos from Blob Storage, as on App Service: the real binary with App
//! Service authentication on (the platform's principal header), PostgreSQL signed in with
//! tokens, Azurite. A delete while storage is down removes the row at once and keeps the photo
//! in the outbox until storage is back; then nothing is left behind.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;

use crate::helpers::azure_rig::AzureRig;
use crate::helpers::process::{
    AppProcess, BINARY, add_restaurant, browser, get_page, post_review_form,
};
use crate::helpers::{PHONE_PHOTO, extract_csrf, photo_part};

const MODERATOR: &str = "6f1c1d2e-4e0b-4f55-9d3b-0b2f1c3e4a5b";

fn principal() -> String {
    let json = serde_json::json!({"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": [
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": MODERATOR},
        {"typ": "name", "val": "Ada"}]});
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

async fn count(rig: &AzureRig, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&mut rig.admin_db().await)
        .await
        .unwrap();
    n
}

async fn review_with_photo(client: &reqwest::Client, app: &AppProcess, restaurant: &str) {
    let response = post_review_form(client, app, restaurant, |form| {
        form.text("user_name", "Snapper").text("rating", "3").part(
            "reviewImage",
            photo_part(PHONE_PHOTO, "IMG.JPG", "image/jpeg"),
        )
    })
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// The moderator (App Service's header) deletes review `id`.
async fn delete_as_moderator(client: &reqwest::Client, app: &AppProcess, id: i64) -> StatusCode {
    let token = extract_csrf(&get_page(client, app, "/create").await).unwrap();
    client
        .post(app.url(&format!("/moderate/reviews/{id}/delete")))
        .header("x-ms-client-principal", principal())
        .form(&[("csrfmiddlewaretoken", token)])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_reviews_removes_both_blobs_even_when_storage_is_down_during_the_delete() {
    let Some(mut rig) = AzureRig::start(Duration::from_secs(3600)).await else {
        return;
    };
    let mut vars = rig.environment();
    vars.push(("WEBSITE_AUTH_ENABLED".into(), "True".into()));
    vars.push(("MODERATORS".into(), MODERATOR.into()));
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut app = AppProcess::start(&refs);
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let response = add_restaurant(&client, &app, "Blob Bistro").await;
    let restaurant = response.headers()["location"].to_str().unwrap().to_owned();
    review_with_photo(&client, &app, &restaurant).await;
    review_with_photo(&client, &app, &restaurant).await;
    assert_eq!(rig.blobs().await.len(), 4);
    let ids: Vec<(i64,)> = sqlx::query_as("SELECT id FROM review ORDER BY id")
        .fetch_all(&mut rig.admin_db().await)
        .await
        .unwrap();

    assert_eq!(
        delete_as_moderator(&client, &app, ids[0].0).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        rig.blobs().await.len(),
        2,
        "both renditions of the first photo deleted"
    );

    rig.azurite.stop();
    assert_eq!(
        delete_as_moderator(&client, &app, ids[1].0).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        count(&rig, "SELECT COUNT(*) FROM review").await,
        0,
        "the row goes at once"
    );
    assert_eq!(
        count(&rig, "SELECT COUNT(*) FROM photo_deletion").await,
        1,
        "the photo waits"
    );
    rig.azurite.resume().await;

    // The command's pass over the outbox (the app's background pass does the same every 30 s).
    let output = Command::new(BINARY)
        .args(["moderate", "retry-photo-deletions"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(rig.blobs().await.is_empty(), "nothing orphaned");
    assert_eq!(count(&rig, "SELECT COUNT(*) FROM photo_deletion").await, 0);
    let (total,): (i64,) = sqlx::query_as("SELECT review_count FROM restaurant")
        .fetch_one(&mut rig.admin_db().await)
        .await
        .unwrap();
    assert_eq!(total, 0);
    app.sigterm().await;
}
