//! CSRF, headers, the Host allowlist, slow clients, health and static assets.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::multipart::Form;
use rstest::rstest;
use rstest_reuse::apply;

use crate::helpers::both_backends;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, PHONE_PHOTO, TestApp, photo_part};

#[apply(both_backends)]
async fn posts_without_a_valid_csrf_token_are_refused_and_store_nothing(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Guarded").await;
    let _ = app.csrf_token("/create").await; // the browser has a cookie, the form is forged
    for (case, token) in [
        ("no token", None),
        ("wrong token", Some("forged-token")),
        ("empty token", Some("")),
    ] {
        let mut fields = vec![("restaurant_name", "Forged"), ("description", "Forged")];
        if let Some(token) = token {
            fields.push(("csrfmiddlewaretoken", token));
        }
        let response = app
            .client
            .post(app.url("/add"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "restaurant: {case}"
        );
        assert!(response.text().await.unwrap().contains("security token"));

        let mut form = Form::new().text("user_name", "Forged").text("rating", "5");
        if let Some(token) = token {
            form = form.text("csrfmiddlewaretoken", token.to_owned());
        }
        let form = form.part(
            "reviewImage",
            photo_part(PHONE_PHOTO, "a.jpg", "image/jpeg"),
        );
        let response = app.post_review(id, form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "review: {case}");
    }
    // A client that never had the cookie cannot reuse someone else's token either.
    let token = app.csrf_token("/create").await;
    let stranger = reqwest::Client::new();
    let response = stranger
        .post(app.url("/add"))
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("restaurant_name", "X"),
            ("description", "Y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.restaurant_count().await, 1);
    assert_eq!(app.review_count().await, 0);
    assert_eq!(app.stored_photo_files().len(), 0);
}

#[apply(both_backends)]
async fn a_cross_site_post_is_refused_even_with_a_valid_token(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.csrf_token("/create").await;
    let fields = [
        ("csrfmiddlewaretoken", token.as_str()),
        ("restaurant_name", "Evil"),
        ("description", "Evil"),
    ];
    for (origin, fetch_site) in [
        ("https://evil.example", Some("cross-site")),
        ("https://evil.example", None),
        ("null", None),
    ] {
        let mut request = app
            .client
            .post(app.url("/add"))
            .header("origin", origin)
            .form(&fields);
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{origin} {fetch_site:?}"
        );
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("sent from another site")
        );
    }
    // The same form from the site itself goes through.
    let response = app
        .client
        .post(app.url("/add"))
        .header("origin", app.address.clone())
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("restaurant_name", "Fine"),
            ("description", "Fine"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.restaurant_count().await, 1);
}

#[apply(both_backends)]
async fn every_page_carries_the_security_headers(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app.create_restaurant("Headers").await;
    for path in [
        "/".to_owned(),
        "/create".to_owned(),
        format!("/{id}/"),
        "/missing/page".to_owned(),
        "/static/app.css".to_owned(),
    ] {
        let response = app.get(&path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers.contains_key("referrer-policy"), "{path}");
        assert!(headers.contains_key("x-request-id"), "{path}");
    }
    let (_, html) = app.get_text(&format!("/{id}/")).await;
    assert!(
        !html.contains("<script>") && !html.contains(" style=\""),
        "no inline script or style"
    );
}

#[apply(both_backends)]
async fn health_answers_when_the_database_does(#[case] backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn a_host_outside_the_allowlist_gets_400_but_health_still_answers() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.allowed_hosts = Some(vec![
            "myapp.azurewebsites.net".into(),
            ".example.org".into(),
        ]);
    })
    .await
    .unwrap();
    let with_host =
        |host: &str, path: &str| app.client.get(app.url(path)).header("host", host).send();
    assert_eq!(
        with_host("evil.example", "/").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        with_host("127.0.0.1", "/").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        with_host("myapp.azurewebsites.net", "/")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        with_host("www.example.org:8443", "/")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        with_host("169.254.129.3:8181", "/health")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// Sends `request` as it is over a fresh connection and returns the status line of the answer.
async fn raw_status_line(app: &TestApp, request: &str) -> String {
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn two_host_lines_or_a_target_naming_another_host_are_refused_with_400() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.allowed_hosts = Some(vec!["127.0.0.1".into()]);
    })
    .await
    .unwrap();
    // (case, request line, Host lines, expected status)
    let cases = [
        ("one allowed Host", "GET /", "Host: 127.0.0.1\r\n", "200"),
        (
            "a second Host line after an allowed one",
            "GET /",
            "Host: 127.0.0.1\r\nHost: evil.example\r\n",
            "400",
        ),
        (
            "absolute-form for this host",
            "GET http://127.0.0.1/",
            "Host: 127.0.0.1\r\n",
            "200",
        ),
        (
            "absolute-form for another host",
            "GET http://evil.example/",
            "Host: 127.0.0.1\r\n",
            "400",
        ),
    ];
    for (case, target, hosts, status) in cases {
        let request = format!("{target} HTTP/1.1\r\n{hosts}Connection: close\r\n\r\n");
        let line = raw_status_line(&app, &request).await;
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status}")),
            "{case}: {line}"
        );
    }
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.header_read_timeout = Duration::from_millis(500);
    })
    .await
    .unwrap();
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Never finish the headers; the server must give up and close (or answer 408).
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the connection was still open after 5 s");
}

/// Reads until the server closes the connection; `None` if it is still open after `within`.
async fn closed_within(socket: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    tokio::time::timeout(within, socket.read_to_end(&mut buffer))
        .await
        .ok()
        .map(|_| buffer)
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_at_the_header_timeout() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.header_read_timeout = Duration::from_millis(500);
    })
    .await
    .unwrap();
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let sent_back = closed_within(&mut silent, Duration::from_secs(5)).await;
    assert_eq!(
        sent_back.as_deref(),
        Some(&b""[..]),
        "a silent connection must be closed, without an answer, soon after the timeout"
    );
}

const KEEP_ALIVE_GET: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/// Sends one request on a kept-alive connection and reads its status line.
async fn status_on(socket: &mut tokio::net::TcpStream, request: &[u8]) -> String {
    socket.write_all(request).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    String::from_utf8_lossy(&buffer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn at_the_connection_cap_open_connections_are_served_and_new_ones_wait_their_turn() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.header_read_timeout = Duration::from_millis(1500);
        s.http.max_connections = 3;
    })
    .await
    .unwrap();
    let addr = app.address.trim_start_matches("http://").to_owned();
    let connect = || tokio::net::TcpStream::connect(addr.clone());
    let mut regular = connect().await.unwrap();
    assert!(
        status_on(&mut regular, KEEP_ALIVE_GET)
            .await
            .contains("200")
    );
    // Two clients that never send anything fill the other two slots.
    let mut silent = [connect().await.unwrap(), connect().await.unwrap()];
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A newcomer is not accepted yet (its request waits in the backlog)...
    let started = std::time::Instant::now();
    let mut newcomer = connect().await.unwrap();
    newcomer
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // ...while the connection already open is still served at the cap.
    assert!(
        status_on(&mut regular, KEEP_ALIVE_GET)
            .await
            .contains("200")
    );

    // The silent ones are closed at the header timeout, which lets the newcomer in.
    for socket in &mut silent {
        assert!(
            closed_within(socket, Duration::from_secs(5))
                .await
                .is_some()
        );
    }
    let answer = closed_within(&mut newcomer, Duration::from_secs(5))
        .await
        .expect("the newcomer was answered once a slot freed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the newcomer was served before any slot was free: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_upload_is_cut_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.http.body_idle_timeout = Duration::from_millis(500);
    })
    .await
    .unwrap();
    let id = app.create_restaurant("Patient").await;
    let token = app.csrf_token(&format!("/{id}/")).await;
    let cookie = format!("csrftoken={token}");
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /review/{id} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 100000\r\n\r\n--B\r\nContent-Disposition: form-data; name=\"user_name\"\r\n\r\nSlow"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // ...and then nothing more.
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buffer)).await;
    assert!(
        read.is_ok(),
        "the stalled upload still held the connection after 5 s"
    );
    let response = String::from_utf8_lossy(&buffer);
    assert!(!response.starts_with("HTTP/1.1 500"), "{response}");
    assert_eq!(app.review_count().await, 0);
}

#[tokio::test]
async fn static_assets_are_served_by_the_app_with_their_types() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    for (path, content_type) in [
        ("/static/bootstrap.min.css", "text/css; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
    }
    assert_eq!(
        app.get("/static/../Cargo.toml").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/static/nope.css").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/photos/../../etc/passwd").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/photos/not-a-photo.jpg").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_csrf_cookie_is_http_only_and_secure_behind_https() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let response = reqwest::Client::new()
        .get(app.url("/create"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("csrftoken="));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}
