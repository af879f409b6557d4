//! Test harness: spawns the real application on port 0 against a fresh SQLite file or a fresh
//! PostgreSQL database, and talks to it over HTTP like a browser would. The submodules are the
//! rigs of the Azure tests: the real binary as a child process, a fake identity endpoint,
//! throwaway PostgreSQL clusters, an LDAP token check, Azurite and a test CA.

pub mod azure_rig;
pub mod azurite;
pub mod fake_identity;
pub mod pg_cluster;
pub mod process;
pub mod relay;
pub mod test_ca;
pub mod token_ldap;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response, StatusCode};
use restaurant_review::config::{DatabaseSettings, PostgresSettings, Settings};
use restaurant_review::db::Database;
use restaurant_review::db::sql::Statement;
use restaurant_review::startup::Application;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PHONE_PHOTO: &[u8] = include_bytes!("../fixtures/phone-photo.jpg");

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test once on SQLite and once on PostgreSQL, on a two-thread runtime:
/// `#[apply(both_backends)]` over an `async fn name(#[case] backend: Backend)`.
#[rstest_reuse::template]
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub fn both_backends(#[case] backend: Backend) {}

fn admin_options() -> PgConnectOptions {
    let url = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    PgConnectOptions::from_str(&url).expect("TEST_POSTGRES_URL is a valid PostgreSQL URL")
}

/// Where the test PostgreSQL listens (`TEST_POSTGRES_URL`'s host and port).
pub fn postgres_address() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let admin = admin_options();
    (admin.get_host(), admin.get_port())
        .to_socket_addrs()
        .expect("TEST_POSTGRES_URL's host resolves")
        .next()
        .expect("TEST_POSTGRES_URL's host has an address")
}

/// A database created for one test and dropped after it.
struct PgTestDatabase {
    name: String,
}

impl PgTestDatabase {
    /// `None` when no PostgreSQL is reachable on a developer machine (the test is skipped with a
    /// printed reason); in CI (`CI=true`) an unreachable PostgreSQL fails the test loudly.
    async fn create() -> Option<(Self, PostgresSettings)> {
        let admin = admin_options();
        let connect =
            tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&admin)).await;
        let mut conn = match connect {
            Ok(Ok(conn)) => conn,
            outcome => {
                let reason = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out after 5 s".to_owned(),
                };
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "PostgreSQL is required in CI but {}:{} is unreachable: {reason}",
                        admin.get_host(),
                        admin.get_port()
                    );
                }
                eprintln!(
                    "SKIPPED: no PostgreSQL at {}:{} ({reason}); set TEST_POSTGRES_URL or start PostgreSQL to run this test",
                    admin.get_host(),
                    admin.get_port()
                );
                return None;
            }
        };
        let name = format!("rr_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("creating a test database");
        conn.close().await.ok();
        let settings = PostgresSettings {
            host: admin.get_host().to_owned(),
            port: admin.get_port(),
            database: name.clone(),
            user: admin.get_username().to_owned(),
            // The local cluster trusts 127.0.0.1 and ignores it; without one, the app would
            // sign in with an Entra token instead.
            password: Some(restaurant_review::config::SecretString::from(
                std::env::var("TEST_POSTGRES_PASSWORD")
                    .unwrap_or_else(|_| "unused-with-trust-auth".into()),
            )),
            auth: restaurant_review::config::AuthRule::PasswordGiven,
            ssl_mode: PgSslMode::Prefer,
            ssl_root_cert: None,
            max_connection_lifetime: restaurant_review::config::DEFAULT_MAX_CONNECTION_LIFETIME,
            pool_size: restaurant_review::config::DEFAULT_POOL_SIZE,
        };
        Some((Self { name }, settings))
    }
}

impl Drop for PgTestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect_with(&admin_options()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub db: Database,
    pub photo_dir: PathBuf,
    /// The one-time moderator sign-in link the app made (it listens on loopback).
    pub sign_in_link: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _data_dir: TempDir,
    _pg: Option<PgTestDatabase>,
}

static TRACING: Once = Once::new();

impl TestApp {
    /// Spawns the app with the test defaults. SQLite is always available; PostgreSQL gives
    /// `None` when no server is reachable on a developer machine (the test is then skipped with
    /// the reason printed), and fails the test in CI (`CI=true`).
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns the app with test defaults adjusted by `customize`.
    pub async fn spawn_with(
        backend: Backend,
        customize: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        TRACING.call_once(|| {
            if std::env::var("TEST_LOG").is_ok() {
                restaurant_review::telemetry::init(restaurant_review::config::LogFormat::Pretty);
            }
        });
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::local(data_dir.path());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        // Tests post in bulk from one address; the rate limit's own tests turn it on.
        settings.rate_limit = restaurant_review::config::RateLimitSettings::off();
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let (db, pg_settings) = PgTestDatabase::create().await?;
                settings.database = DatabaseSettings::Postgres(pg_settings);
                Some(db)
            }
        };
        customize(&mut settings);
        let photo_dir = match &settings.photos {
            restaurant_review::config::PhotoSettings::Local { dir } => dir.clone(),
            restaurant_review::config::PhotoSettings::AzureBlob(_) => {
                panic!(
                    "in-process tests use the local photo store; Blob Storage is tested through the binary"
                )
            }
        };
        let app = Application::build(settings)
            .await
            .expect("the application starts");
        let address = format!("http://{}", app.local_addr());
        let db = app.database().clone();
        let sign_in_link = app.sign_in_link().map(str::to_owned);
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let client = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Some(Self {
            address,
            client,
            db,
            photo_dir,
            sign_in_link,
            shutdown: Some(tx),
            server: Some(server),
            _data_dir: data_dir,
            _pg: pg,
        })
    }

    /// The variables that point the real binary (the `moderate` command, say) at this app's
    /// database and photos.
    pub fn binary_environment(&self) -> Vec<(String, String)> {
        let mut vars = vec![("PHOTO_DIR".to_owned(), self.photo_dir.display().to_string())];
        match &self._pg {
            Some(pg) => {
                let admin = admin_options();
                let password = std::env::var("TEST_POSTGRES_PASSWORD")
                    .unwrap_or_else(|_| "unused-with-trust-auth".into());
                vars.push((
                    "DATABASE_URL".to_owned(),
                    format!(
                        "postgres://{}:{password}@{}:{}/{}",
                        admin.get_username(),
                        admin.get_host(),
                        admin.get_port(),
                        pg.name
                    ),
                ));
            }
            None => vars.push((
                "DATA_DIR".to_owned(),
                self._data_dir.path().display().to_string(),
            )),
        }
        vars
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET succeeds")
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// Loads a page and returns the CSRF token its form carries (the cookie is kept by the client).
    pub async fn csrf_token(&self, path: &str) -> String {
        let (status, html) = self.get_text(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}");
        extract_csrf(&html).expect("the page has a CSRF field")
    }

    pub async fn post_restaurant_form(&self, fields: &[(&str, &str)]) -> Response {
        let token = self.csrf_token("/create").await;
        let mut all: Vec<(&str, &str)> = vec![("csrfmiddlewaretoken", &token)];
        all.extend_from_slice(fields);
        self.client
            .post(self.url("/add"))
            .form(&all)
            .send()
            .await
            .expect("POST /add")
    }

    /// Adds a restaurant through the form and returns its id; the same name twice is added
    /// twice (the "did you mean…?" question is answered "add it anyway").
    pub async fn create_restaurant(&self, name: &str) -> i64 {
        let response = self
            .post_restaurant_form(&[
                ("restaurant_name", name),
                ("street_address", "1 Main Street"),
                ("description", "A test restaurant."),
                ("confirm_duplicate", "yes"),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        location
            .trim_matches('/')
            .parse()
            .expect("redirect to /<id>/")
    }

    /// A review form as the page builds it: token first, then the fields.
    pub async fn review_form(&self, restaurant: i64, fields: &[(&str, &str)]) -> Form {
        let token = self.csrf_token(&format!("/{restaurant}/")).await;
        let mut form = Form::new().text("csrfmiddlewaretoken", token);
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        form
    }

    pub async fn post_review(&self, restaurant: i64, form: Form) -> Response {
        self.client
            .post(self.url(&format!("/review/{restaurant}")))
            .multipart(form)
            .send()
            .await
            .expect("POST /review")
    }

    /// Rows in the review table.
    pub async fn review_count(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM review").await
    }

    /// Rows in the restaurant table.
    pub async fn restaurant_count(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM restaurant").await
    }

    /// Every photo name stored with a review, oldest review first.
    pub async fn image_names(&self) -> Vec<String> {
        let rows: Vec<(String,)> = self
            .db
            .fetch_all(
                "SELECT image_name FROM review WHERE image_name IS NOT NULL ORDER BY id",
                &[],
            )
            .await
            .expect("listing the stored photo names");
        rows.into_iter().map(|(name,)| name).collect()
    }

    /// Runs one statement straight against the app's database, as a script or an import would.
    pub async fn execute(&self, sql: &'static str) {
        self.db
            .write(&[Statement::new(sql, &[])])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs a `SELECT COUNT(*)` on the app's pool (the same SQL on either backend).
    async fn count(&self, sql: &'static str) -> i64 {
        let (count,): (i64,) = self
            .db
            .fetch_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        count
    }

    /// Files in the photo directory (both renditions), excluding the write-check leftovers.
    pub fn stored_photo_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for dir in [self.photo_dir.clone(), self.photo_dir.join("thumbs")] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                files.extend(
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.is_file()),
                );
            }
        }
        files
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = "name=\"csrfmiddlewaretoken\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

pub fn photo_part(bytes: &[u8], file_name: &str, mime: &str) -> Part {
    Part::bytes(bytes.to_vec())
        .file_name(file_name.to_owned())
        .mime_str(mime)
        .unwrap()
}

/// A table row for refused form input: (case, fields sent, message expected on the page).
pub type FieldCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
