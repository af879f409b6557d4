//! The real binary as a child process, configured only through its environment, exactly as App
//! Service starts it; its output is captured for checks such as "no token was logged".

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BINARY: &str = env!("CARGO_BIN_EXE_restaurant-review");

/// A port free now and never handed out before in this test run: a server stopped for an
/// outage (Azurite in the soak) must find its port still free when it comes back, and two
/// rigs must not race for one port.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

pub struct AppProcess {
    child: Child,
    pub base_url: String,
    output: Arc<Mutex<Vec<String>>>,
    pub dir: TempDir,
}

impl AppProcess {
    /// Starts the binary in a fresh directory with `PORT` and exactly `vars` (plus `PATH`).
    pub fn start(vars: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // Another build under the same test (an earlier release, to measure a change).
        let binary = std::env::var("RESTAURANT_REVIEW_BINARY").unwrap_or_else(|_| BINARY.into());
        let mut command = Command::new(binary);
        command
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("APP_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("PORT", port.to_string())
            // Tests post in bulk from one address; the rate limit's own tests set it.
            .env("RATE_LIMIT_POSTS_PER_MINUTE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var("APP_ECHO").is_ok() {
                        eprintln!("[app] {line}");
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }
        Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            output,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/health` answers 200; `false` if the process exits or 60 s pass first.
    pub async fn wait_healthy(&mut self) -> bool {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let response = client.get(self.url("/health")).send().await;
            if response.is_ok_and(|r| r.status() == reqwest::StatusCode::OK) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                tokio::time::sleep(Duration::from_millis(100)).await; // let the readers drain
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub async fn sigterm(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_exit(Duration::from_secs(30))
            .await
            .expect("exits within 30 s of SIGTERM")
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    pub fn output_lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTML of `path`, fetched with `client` (and its cookies).
pub async fn get_page(client: &reqwest::Client, app: &AppProcess, path: &str) -> String {
    client
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// What `/health` answers (also when it answers 503: the body is the same JSON).
pub async fn get_health(client: &reqwest::Client, app: &AppProcess) -> serde_json::Value {
    client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts the review form of the restaurant at `restaurant` (`/<id>/`) as a browser does: the
/// page first (for its CSRF token), then the multipart form with the fields `fields` adds.
pub async fn post_review_form(
    client: &reqwest::Client,
    app: &AppProcess,
    restaurant: &str,
    fields: impl FnOnce(reqwest::multipart::Form) -> reqwest::multipart::Form,
) -> reqwest::Response {
    let page = get_page(client, app, restaurant).await;
    let token = super::extract_csrf(&page).expect("the review form's CSRF token");
    let form = fields(reqwest::multipart::Form::new().text("csrfmiddlewaretoken", token));
    let id = restaurant.trim_matches('/');
    client
        .post(app.url(&format!("/review/{id}")))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// A client that keeps cookies and does not follow redirects, like a browser posting forms.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Adds a restaurant through the form, as a browser would (CSRF token from the page first).
pub async fn add_restaurant(
    client: &reqwest::Client,
    app: &AppProcess,
    name: &str,
) -> reqwest::Response {
    let page = get_page(client, app, "/create").await;
    let token = super::extract_csrf(&page).unwrap();
    client
        .post(app.url("/add"))
        .form(&[
            ("csrfmiddlewaretoken", token.as_str()),
            ("restaurant_name", name),
            ("description", "Added by a test."),
            // A name used twice is added twice, not questioned ("did you mean…?").
            ("confirm_duplicate", "yes"),
        ])
        .send()
        .await
        .unwrap()
}
