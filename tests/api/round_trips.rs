//! Round trips to PostgreSQL per request, counted by a relay between the app and the server:
//! once a statement is prepared, each page costs exactly one (no ping before or after, no
//! `BEGIN`/`COMMIT` around a read), and a review's transaction one more.

use reqwest::StatusCode;
use restaurant_review::config::DatabaseSettings;
use sqlx::postgres::PgSslMode;

use crate::helpers::relay::Relay;
use crate::helpers::{Backend, TestApp, postgres_address};

/// The app on PostgreSQL through a counting relay, with one pool connection so that every
/// statement is prepared on the connection that is measured.
async fn app_behind_relay() -> Option<(TestApp, Relay)> {
    let relay = Relay::start(postgres_address()).await;
    let addr = relay.addr;
    let app = TestApp::spawn_with(Backend::Postgres, |settings| {
        let DatabaseSettings::Postgres(pg) = &mut settings.database else {
            unreachable!("a PostgreSQL test database")
        };
        pg.host = addr.ip().to_string();
        pg.port = addr.port();
        pg.pool_size = 1;
        // Plain text, so the relay can read what is sent.
        pg.ssl_mode = PgSslMode::Disable;
    })
    .await?;
    Some((app, relay))
}

/// Loads `path` once to prepare its statements, then `times` more, and returns the round
/// trips those cost.
async fn turns_for(app: &TestApp, relay: &Relay, path: &str, times: u64) -> u64 {
    let (status, _) = app.get_text(path).await;
    assert_eq!(status, StatusCode::OK, "GET {path}");
    relay.reset();
    for _ in 0..times {
        let (status, _) = app.get_text(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}");
    }
    relay.turns()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_page_costs_one_round_trip_to_postgres_once_its_statement_is_prepared() {
    let Some((app, relay)) = app_behind_relay().await else {
        return;
    };
    let mut restaurant = 0;
    for name in ["Alpha", "Beta", "Gamma"] {
        restaurant = app.create_restaurant(name).await;
    }
    let form = app
        .review_form(
            restaurant,
            &[
                ("user_name", "Ann"),
                ("rating", "4"),
                ("review_text", "Good."),
            ],
        )
        .await;
    assert_eq!(
        app.post_review(restaurant, form).await.status(),
        StatusCode::SEE_OTHER
    );

    for path in [
        "/health".to_owned(),
        "/".to_owned(),
        "/?page=last".to_owned(),
        format!("/{restaurant}/"),
        format!("/{restaurant}/?page=last"),
    ] {
        let turns = turns_for(&app, &relay, &path, 10).await;
        assert_eq!(turns, 10, "{path}: 10 requests took {turns} round trips");
        assert!(
            !relay.client_sent("BEGIN") && !relay.client_sent("COMMIT"),
            "{path}: a read was wrapped in a transaction"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_is_one_round_trip_for_its_transaction_after_the_restaurant_is_read() {
    let Some((app, relay)) = app_behind_relay().await else {
        return;
    };
    let restaurant = app.create_restaurant("Delta").await;
    for round in 0..4 {
        let form = app
            .review_form(
                restaurant,
                &[
                    ("user_name", "Bo"),
                    ("rating", "5"),
                    ("review_text", "Great."),
                ],
            )
            .await;
        // The form's page is loaded outside the count.
        relay.reset();
        let response = app.post_review(restaurant, form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        if round == 0 {
            // The first review prepares its statements.
            continue;
        }
        // One to find the restaurant (a 404 comes before the body is read), one for the
        // transaction: BEGIN, the totals, the row and COMMIT sent together.
        assert_eq!(relay.turns(), 2, "review {round}");
        assert!(relay.client_sent("BEGIN") && relay.client_sent("COMMIT"));
    }
    assert_eq!(app.review_count().await, 4);
}
