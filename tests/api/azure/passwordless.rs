//! Passwordless PostgreSQL, as on App Service: the real binary gets tokens from a fake of the
//! App Service identity endpoint and signs in to a throwaway cluster that, like Azure, accepts
//! any minted token until it expires and refuses stale ones at sign-in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::fake_identity::{FakeIdentity, Mode, claims};
use crate::helpers::pg_cluster::PgCluster;
use crate::helpers::process::{AppProcess, add_restaurant, browser, get_health};
use crate::helpers::test_ca::{Leaf, TestCa};
use crate::helpers::token_ldap::TokenLdap;
use reqwest::StatusCode;

const ROLE: &str = "restaurant-identity";
const DATABASE: &str = "restaurant";

struct Rig {
    cluster: PgCluster,
    identity: FakeIdentity,
    tokens: TokenLdap,
}

impl Rig {
    /// A cluster with the app's role and database, and an identity endpoint whose tokens live
    /// `token_lifetime` and are accepted by the cluster from the moment they are minted.
    async fn start(token_lifetime: Duration) -> Option<Self> {
        Self::start_with(token_lifetime, None).await
    }

    /// Like [`Rig::start`], with the cluster serving TLS with `tls`.
    async fn start_with(token_lifetime: Duration, tls: Option<&Leaf>) -> Option<Self> {
        let tokens = TokenLdap::start().await;
        let cluster = PgCluster::start_with(&tokens, tls)?;
        cluster.create_app_role(ROLE, DATABASE).await;
        let identity = FakeIdentity::start(token_lifetime).await;
        let accept = tokens.clone();
        identity.on_mint(Arc::new(move |token, expires| {
            accept.accept(ROLE, &token, expires);
            Box::pin(async {})
        }));
        Some(Self {
            cluster,
            identity,
            tokens,
        })
    }

    /// App Service's and the tutorial's settings, nothing else.
    fn app_service_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IDENTITY_ENDPOINT", self.identity.app_service_url.clone()),
            ("IDENTITY_HEADER", self.identity.header_secret().to_owned()),
            ("AZURE_CLIENT_ID", self.identity.client_id().to_owned()),
            ("DBHOST", "127.0.0.1".into()),
            // On Azure the host's name asks for a token; this local stand-in must say so.
            ("DATABASE_AUTH", "entra".into()),
            ("DBPORT", self.cluster.port.to_string()),
            ("DBNAME", DATABASE.into()),
            ("DBUSER", ROLE.into()),
            // The throwaway cluster has no TLS; on Azure the default is verify-full.
            ("DBSSLMODE", "disable".into()),
            ("WEBSITE_HOSTNAME", "127.0.0.1".into()),
        ]
    }

    fn start_app(&self, extra: &[(&'static str, String)]) -> AppProcess {
        let mut env = self.app_service_env();
        for (name, value) in extra {
            env.retain(|(n, _)| n != name);
            env.push((name, value.clone()));
        }
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        AppProcess::start(&pairs)
    }

    /// Sign-ins the server refused: token checks that failed, and any failure in its log.
    fn refused_logins(&self) -> usize {
        let log =
            std::fs::read_to_string(self.cluster.data_dir().parent().unwrap().join("server.log"))
                .unwrap_or_default();
        let logged = log
            .lines()
            .filter(|l| l.contains("authentication failed"))
            .count();
        logged.max(self.tokens.refused() as usize)
    }

    /// Neither any token nor the identity header appears in `text`.
    fn assert_no_secrets(&self, what: &str, text: &str) {
        assert!(
            !text.contains(self.identity.header_secret()),
            "{what} contains IDENTITY_HEADER"
        );
        for token in self.identity.tokens() {
            assert!(!text.contains(&token), "{what} contains a token");
            let signature = token.rsplit('.').next().unwrap();
            assert!(
                !text.contains(signature),
                "{what} contains a token's signature"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_outlives_three_token_lifetimes_with_no_failed_request_or_refused_login() {
    let Some(rig) = Rig::start(Duration::from_secs(60)).await else {
        return;
    };
    // Connections recycle every 3 s, so new sign-ins happen all along, each needing a valid token.
    let mut app = rig.start_app(&[("DB_CONNECTION_MAX_LIFETIME", "3".into())]);
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let started = Instant::now();
    let (mut requests, mut failures) = (0u32, Vec::new());
    while started.elapsed() < Duration::from_secs(190) {
        let status = client.get(app.url("/")).send().await.map(|r| r.status());
        requests += 1;
        if status.as_ref().map_or(true, |s| *s != StatusCode::OK) {
            failures.push(format!("{:?} at {:?}", status, started.elapsed()));
        }
        if requests % 20 == 0 {
            let status = add_restaurant(&client, &app, &format!("Place {requests}"))
                .await
                .status();
            if status != StatusCode::SEE_OTHER {
                failures.push(format!("POST /add {status} at {:?}", started.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:?}",
        failures.len()
    );
    // One token at startup, then one about every 48 s (refresh with a fifth of the life left).
    let calls = rig.identity.requests();
    assert!(
        (4..=7).contains(&calls),
        "{calls} identity calls in 190 s of 60-second tokens"
    );
    assert_eq!(rig.refused_logins(), 0, "the server refused a login");
    let health = get_health(&client, &app).await;
    assert_eq!(
        health["tokens"][0]["scope"],
        "https://ossrdbms-aad.database.windows.net/.default"
    );
    assert!(health["tokens"][0]["valid_until"].is_string());
    app.sigterm().await;
    rig.assert_no_secrets("the app's output", &app.output());
    rig.assert_no_secrets("/health", &health.to_string());
    // The tokens were real-looking Entra tokens for the PostgreSQL audience.
    let first = claims(&rig.identity.tokens()[0]);
    assert_eq!(first["aud"], "https://ossrdbms-aad.database.windows.net");
    assert!(
        first["iss"]
            .as_str()
            .unwrap()
            .starts_with("https://sts.windows.net/")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_first_requests_cause_one_token_request() {
    let Some(rig) = Rig::start(Duration::from_secs(3600)).await else {
        return;
    };
    let mut app = rig.start_app(&[]);
    assert!(app.wait_healthy().await, "{}", app.output());
    assert_eq!(
        rig.identity.requests(),
        1,
        "one token for startup and migrations"
    );
    let client = reqwest::Client::new();
    let requests = (0..100).map(|_| {
        let client = client.clone();
        let url = app.url("/");
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.unwrap().unwrap(), StatusCode::OK);
    }
    assert_eq!(
        rig.identity.requests(),
        1,
        "no request waited on the identity endpoint"
    );
    app.sigterm().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_outage_of_thirty_seconds_is_invisible_while_the_token_is_valid() {
    // 180-second tokens are refreshed with 36 s left; the outage covers that refresh, the retry
    // 30 s later succeeds before expiry.
    let Some(rig) = Rig::start(Duration::from_secs(180)).await else {
        return;
    };
    let mut app = rig.start_app(&[("DB_CONNECTION_MAX_LIFETIME", "2".into())]);
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut outage = None;
    while started.elapsed() < Duration::from_secs(185) {
        let elapsed = started.elapsed();
        if outage.is_none() && elapsed >= Duration::from_secs(130) {
            rig.identity.set_mode(Mode::Fail500);
            outage = Some(Instant::now());
        }
        if outage.is_some_and(|o| o.elapsed() >= Duration::from_secs(30)) {
            rig.identity.set_mode(Mode::Normal);
        }
        let status = client.get(app.url("/")).send().await.map(|r| r.status());
        if status.as_ref().map_or(true, |s| *s != StatusCode::OK) {
            failures.push(format!("{status:?} at {elapsed:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(failures.is_empty(), "user-visible failures: {failures:?}");
    let health = get_health(&client, &app).await;
    assert!(
        health["tokens"][0]["last_error"].is_null(),
        "recovered: {health}"
    );
    assert!(
        rig.identity.minted() >= 2,
        "the token was replaced after the outage"
    );
    app.sigterm().await;
    let output = app.output();
    assert!(
        output.contains("token refresh failed; will retry"),
        "the failure was logged"
    );
    rig.assert_no_secrets("the app's output", &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_with_the_endpoint_down_gives_503_and_recovers_by_itself() {
    let Some(rig) = Rig::start(Duration::from_secs(20)).await else {
        return;
    };
    let mut app = rig.start_app(&[("DB_CONNECTION_MAX_LIFETIME", "1".into())]);
    assert!(app.wait_healthy().await, "{}", app.output());
    rig.identity.set_mode(Mode::Fail500);
    let client = browser();
    let started = Instant::now();
    // Wait past the token's expiry: new connections are refused, pages say so cleanly.
    let mut unavailable_page = None;
    while started.elapsed() < Duration::from_secs(45) {
        let response = client.get(app.url("/")).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            unavailable_page = Some(response.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let page = unavailable_page.expect("a 503 once the token expired");
    assert!(
        page.contains("Temporarily unavailable") && page.contains("<html"),
        "{page}"
    );
    assert!(
        !page.contains("28P01") && !page.contains("password"),
        "no internals: {page}"
    );
    rig.assert_no_secrets("the 503 page", &page);
    let health = client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The endpoint comes back; the app recovers without a restart (next retry within 60 s).
    rig.identity.set_mode(Mode::Normal);
    let back = Instant::now();
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(75) {
        if client.get(app.url("/")).send().await.unwrap().status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        recovered,
        "still failing 75 s after the endpoint returned:\n{}",
        app.output()
    );
    assert_eq!(
        add_restaurant(&client, &app, "Back again").await.status(),
        StatusCode::SEE_OTHER
    );
    app.sigterm().await;
    rig.assert_no_secrets("the app's output", &app.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_id_fails_fast_naming_the_identity() {
    let Some(rig) = Rig::start(Duration::from_secs(3600)).await else {
        return;
    };
    let wrong = "00000000-1111-2222-3333-444444444444";
    let started = Instant::now();
    let mut app = rig.start_app(&[("AZURE_CLIENT_ID", wrong.into())]);
    let status = app
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exits instead of retrying");
    assert!(!status.success());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let output = app.output();
    assert!(output.contains(wrong), "names the identity: {output}");
    assert!(output.contains("not assigned"), "{output}");
    assert_eq!(rig.identity.minted(), 0);
    rig.assert_no_secrets("the app's output", &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_identity_header_is_refused_and_never_printed() {
    let Some(rig) = Rig::start(Duration::from_secs(3600)).await else {
        return;
    };
    let wrong_header = "wrong-identity-header-value";
    let mut app = rig.start_app(&[("IDENTITY_HEADER", wrong_header.into())]);
    let status = app
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("gives up");
    assert!(!status.success());
    let output = app.output();
    assert!(output.contains("could not start"), "{output}");
    assert!(!output.contains(wrong_header), "{output}");
    rig.assert_no_secrets("the app's output", &output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_create_on_public_gets_the_grant_it_needs() {
    let Some(rig) = Rig::start(Duration::from_secs(3600)).await else {
        return;
    };
    rig.cluster
        .create_locked_down_database("locked_down", ROLE)
        .await;
    let mut app = rig.start_app(&[("DBNAME", "locked_down".into())]);
    let status = app.wait_exit(Duration::from_secs(30)).await.expect("stops");
    assert!(!status.success());
    let output = app.output();
    assert!(
        output.contains(&format!("GRANT CREATE ON SCHEMA public TO \\\"{ROLE}\\\""))
            || output.contains(&format!("GRANT CREATE ON SCHEMA public TO \"{ROLE}\"")),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_is_verified_and_an_impostor_is_refused() {
    let trusted = TestCa::new("Test Root CA");
    let impostor = TestCa::new("Impostor Root CA");
    let leaf = trusted.leaf(&["127.0.0.1", "localhost"]);
    let Some(rig) = Rig::start_with(Duration::from_secs(3600), Some(&leaf)).await else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let trusted_pem = certs.path().join("trusted.pem");
    let impostor_pem = certs.path().join("impostor.pem");
    std::fs::write(&trusted_pem, &trusted.cert_pem).unwrap();
    std::fs::write(&impostor_pem, &impostor.cert_pem).unwrap();

    // verify-full, as on Azure, against the CA that signed the server's certificate: works,
    // and the app's sessions really are encrypted.
    let mut app = rig.start_app(&[
        ("DBSSLMODE", "verify-full".into()),
        ("DBSSLROOTCERT", trusted_pem.display().to_string()),
    ]);
    assert!(app.wait_healthy().await, "{}", app.output());
    let encrypted: Vec<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = '{ROLE}'"
    )))
    .fetch_all(&mut rig.cluster.admin().await)
    .await
    .unwrap();
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|ssl| *ssl),
        "{encrypted:?}"
    );
    app.sigterm().await;

    // The same server is refused when its certificate does not chain to the trusted CA.
    let mut refused = rig.start_app(&[
        ("DBSSLMODE", "verify-full".into()),
        ("DBSSLROOTCERT", impostor_pem.display().to_string()),
    ]);
    let status = refused
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("stops");
    assert!(!status.success());
    let output = refused.output();
    assert!(
        output.contains("could not open the database")
            && output.to_lowercase().contains("certificate"),
        "{output}"
    );
    rig.assert_no_secrets("the app's output", &output);
}
