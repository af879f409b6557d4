//! A photo over the size limit, sent the way browsers without JavaScript and ordinary HTTP
//! libraries send it: the 413 page comes back to every client (none sees a broken pipe) with
//! what was typed kept, and the address it leaves in the address bar does not 405.

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, photo_part};

/// 9 MiB: over the default 8 MiB photo limit, within what a refused upload is read for.
const NINE_MIB: usize = 9 * 1024 * 1024;

/// Sends a review with a 9 MiB photo from Python's `urllib.request`, which writes the whole
/// body before it reads the answer, and prints the status and the page.
const URLLIB_CLIENT: &str = r#"
import sys, urllib.request, urllib.error
url, token = sys.argv[1], sys.argv[2]
boundary = "----pyform7MA4YWxkTrZu0gW"
def text(name, value):
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
body = b"".join([
    text("csrfmiddlewaretoken", token),
    text("user_name", "Pythonista"),
    text("rating", "4"),
    text("review_text", "Typed before a huge photo."),
    (f'--{boundary}\r\nContent-Disposition: form-data; name="reviewImage"; filename="huge.jpg"\r\n'
     'Content-Type: image/jpeg\r\n\r\n').encode(),
    b"\xff" * (9 * 1024 * 1024),
    f"\r\n--{boundary}--\r\n".encode(),
])
request = urllib.request.Request(url, data=body, method="POST", headers={
    "Content-Type": f"multipart/form-data; boundary={boundary}",
    "Cookie": f"csrftoken={token}",
})
try:
    with urllib.request.urlopen(request, timeout=60) as response:
        status, page = response.status, response.read()
except urllib.error.HTTPError as error:
    status, page = error.code, error.read()
print(status)
print(page.decode())
"#;

/// Asserts the page is the restaurant's page with the review form as typed and the size message.
fn assert_form_kept(page: &str) {
    assert!(
        page.contains("The photo is too big: the limit is 8 MiB."),
        "{page}"
    );
    assert!(page.contains(r#"value="Pythonista""#), "the name is kept");
    assert!(
        page.contains(r#"value="4" required checked"#),
        "the rating is kept"
    );
    assert!(
        page.contains("Typed before a huge photo."),
        "the text is kept"
    );
}

#[tokio::test]
async fn a_nine_mib_photo_posted_with_pythons_urllib_gets_the_413_page_with_the_typed_fields() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        let reason = "python3 is not installed: skipping the urllib client test";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
        eprintln!("{reason}");
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let id = app.create_restaurant("Big Pictures").await;
    let token = app.csrf_token(&format!("/{id}/")).await;
    let url = app.url(&format!("/review/{id}"));
    // Off the runtime's thread: the app is served on it meanwhile.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", URLLIB_CLIENT, &url, &token])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "urllib failed (a broken pipe?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, page) = stdout.split_once('\n').unwrap();
    assert_eq!(status, "413");
    assert_form_kept(page);
    assert_eq!(app.review_count().await, 0);
    assert!(app.stored_photo_files().is_empty());
}

#[tokio::test]
async fn a_nine_mib_photo_posted_with_reqwest_gets_the_413_page_with_the_typed_fields() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let id = app.create_restaurant("Big Pictures").await;
    // reqwest declares the length: the photo is refused from it, the fields before it kept.
    let form = app
        .review_form(
            id,
            &[
                ("user_name", "Pythonista"),
                ("rating", "4"),
                ("review_text", "Typed before a huge photo."),
            ],
        )
        .await
        .part(
            "reviewImage",
            photo_part(&vec![0xFF; NINE_MIB], "huge.jpg", "image/jpeg"),
        );
    let response = app.post_review(id, form).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_form_kept(&response.text().await.unwrap());
    assert_eq!(app.review_count().await, 0);

    // The browser is left at /review/<id>: reloading it leads back to the restaurant.
    let reloaded = app.get(&format!("/review/{id}")).await;
    assert_eq!(reloaded.status(), StatusCode::SEE_OTHER);
    assert_eq!(reloaded.headers()["location"], format!("/{id}/"));
    assert_eq!(
        app.get("/review/not-a-number").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_upload_far_beyond_what_is_read_for_a_refusal_is_answered_without_reading_it() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.http.max_photo_bytes = 64 * 1024)
        .await
        .unwrap();
    let id = app.create_restaurant("Big Pictures").await;
    let token = app.csrf_token(&format!("/{id}/")).await;
    // Declares 1 GiB and sends only the fields: the answer must not wait for the rest.
    let head = format!(
        "POST /review/{id} HTTP/1.1\r\nHost: {host}\r\nCookie: csrftoken={token}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 1073741824\r\n\r\n\
         --B\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\"\r\n\r\n{token}\r\n\
         --B\r\nContent-Disposition: form-data; name=\"user_name\"\r\n\r\nHopeful\r\n\
         --B\r\nContent-Disposition: form-data; name=\"reviewImage\"; filename=\"x.jpg\"\r\n\r\n",
        host = app.address.trim_start_matches("http://"),
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024 * 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut got = 0;
        while !String::from_utf8_lossy(&answer[..got]).contains("Hopeful") {
            let n = socket.read(&mut answer[got..]).await.unwrap();
            assert!(n > 0, "closed before the page");
            got += n;
        }
        got
    })
    .await
    .expect("answered at once");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
