//! The app as its own process (this profile's build, or an earlier one to compare with),
//! configured by environment as on App Service.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which build runs.
#[derive(Clone, Debug)]
pub struct Binary {
    pub label: String,
    pub path: String,
}

impl Binary {
    /// This profile's build.
    pub fn this_build() -> Self {
        Self {
            label: "this build".into(),
            path: env!("CARGO_BIN_EXE_restaurant-review").into(),
        }
    }
}

pub struct App {
    child: Child,
    pub base: String,
}

impl App {
    pub async fn start(binary: &Binary, env: &[(&str, String)], data_dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(&binary.path);
        command
            .current_dir(data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // The default log level (info, request spans on), as people run it.
            .env("PORT", port.to_string())
            .env("DATA_DIR", data_dir)
            // The load posts from one address.
            .env("RATE_LIMIT_POSTS_PER_MINUTE", "0")
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("starting the app");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(format!("{base}/health")).await
                && response.status().is_success()
            {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the app exited at startup: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the app did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, base }
    }

    /// The app's process id (for /proc and profilers).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|line| line.starts_with(field))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hashed URL of the stylesheet, read off the page as a browser would.
pub async fn stylesheet_path(base: &str) -> String {
    let html = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("/static/app.").expect("app.css link on the page");
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}
