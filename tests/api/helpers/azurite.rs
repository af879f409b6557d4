//! Azurite, the Azure Storage emulator (pinned in package.json, installed by `npm ci`), started
//! over HTTPS with a certificate from a test CA and `--oauth basic`, so it checks the bearer
//! tokens' claims (audience, issuer, expiry) as Blob Storage does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::test_ca::TestCa;

pub const ACCOUNT: &str = "devstoreaccount1";

pub struct Azurite {
    pub port: u16,
    pub ca: TestCa,
    dir: TempDir,
    child: Option<Child>,
}

fn azurite_bin() -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/azurite-blob");
    bin.exists().then_some(bin)
}

impl Azurite {
    /// Starts Azurite, or `None` (printing why) when `npm ci` has not installed it; in CI
    /// (`CI=true`) that is a failure.
    pub async fn start() -> Option<Self> {
        if azurite_bin().is_none() {
            let reason = "Azurite is not installed; run `npm ci` (scripts/test.sh does)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
            eprintln!("SKIPPED: {reason}");
            return None;
        }
        let ca = TestCa::new("Azurite Test CA");
        let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let port = super::process::free_port();
        let mut azurite = Self {
            port,
            ca,
            dir,
            child: None,
        };
        azurite.resume().await;
        Some(azurite)
    }

    /// The blob endpoint as the app is configured with it (`STORAGE_ACCOUNT_NAME`).
    pub fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The test CA's certificate file (`STORAGE_CA_CERT_FILE`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// An HTTP client that trusts the emulator's certificate and sends no credentials.
    pub fn anonymous_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca.cert_pem.as_bytes()).unwrap(),
            )
            .build()
            .unwrap()
    }

    /// Stops the emulator, as an outage: SIGTERM lets it save its metadata (a real storage
    /// account keeps its containers through an outage), SIGKILL if it lingers.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port and data, and waits until it accepts TLS connections.
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("azurite.log")).unwrap();
        let child = Command::new(azurite_bin().unwrap())
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
            ])
            .arg("--location")
            .arg(self.dir.path().join("data"))
            .arg("--cert")
            .arg(self.dir.path().join("cert.pem"))
            .arg("--key")
            .arg(self.dir.path().join("key.pem"))
            .args([
                "--oauth",
                "basic",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting azurite-blob");
        self.child = Some(child);
        let client = self.anonymous_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            // Any HTTP answer (an anonymous request is refused) means it is up.
            if client
                .get(format!("{}?comp=list", self.endpoint()))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Azurite did not start: {}",
            std::fs::read_to_string(self.dir.path().join("azurite.log")).unwrap_or_default()
        );
    }

    /// Blob names in `container`, listed with a bearer token.
    pub async fn blob_names(&self, container: &str, token: &str) -> Vec<String> {
        let response = self
            .anonymous_client()
            .get(format!(
                "{}/{container}?restype=container&comp=list",
                self.endpoint()
            ))
            .bearer_auth(token)
            .header("x-ms-version", "2021-08-06")
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "listing blobs: {}",
            response.status()
        );
        let xml = response.text().await.unwrap();
        xml.split("<Name>")
            .skip(1)
            .filter_map(|s| s.split("</Name>").next())
            .map(str::to_owned)
            .collect()
    }

    /// Creates a container; `public` allows anonymous reads of its blobs.
    pub async fn create_container(&self, container: &str, token: &str, public: bool) {
        let mut request = self
            .anonymous_client()
            .put(format!("{}/{container}?restype=container", self.endpoint()))
            .bearer_auth(token)
            .header("x-ms-version", "2021-08-06")
            .header("content-length", "0");
        if public {
            request = request.header("x-ms-blob-public-access", "blob");
        }
        let status = request.send().await.unwrap().status();
        assert!(
            status.as_u16() == 201 || status.as_u16() == 409,
            "creating container: {status}"
        );
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}
