//! Signing in to PostgreSQL: a local server's URL without a password (trust or peer on a
//! laptop) connects without one, rather than asking for an Azure identity.

use reqwest::StatusCode;
use restaurant_review::config::{AuthRule, DatabaseSettings, PostgresSettings};

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn a_local_postgres_url_without_a_password_signs_in_without_one() {
    if std::env::var("TEST_POSTGRES_PASSWORD").is_ok() {
        eprintln!(
            "SKIPPED: the test PostgreSQL wants a password, so it does not trust local users"
        );
        return;
    }
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |s| {
        let DatabaseSettings::Postgres(pg) = &s.database else {
            unreachable!("a PostgreSQL test database")
        };
        // What a developer writes: no password, and no Azure settings at all.
        let url = format!(
            "postgres://{}@{}:{}/{}",
            pg.user, pg.host, pg.port, pg.database
        );
        let local = PostgresSettings::from_url(&url).unwrap();
        assert_eq!(local.auth, AuthRule::NoPassword);
        assert!(local.password.is_none());
        s.database = DatabaseSettings::Postgres(local);
        s.azure.vars.clear();
    })
    .await
    else {
        return;
    };
    let id = app.create_restaurant("Trusted Local").await;
    let (status, page) = app.get_text(&format!("/{id}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Trusted Local"));
}
