//! Index-page benchmark: 10,000 restaurants and 100,000 reviews.
//!
//! Measures, side by side in one run (iterations interleaved so both see the same machine
//! state), the index query this app uses (running review totals kept on the restaurant row)
//! against the sample's approach (aggregating every review per request, Django's
//! `annotate(Avg, Count)`), plus the whole `GET /` through HTTP for the first and last page.
//!
//! Run: `cargo bench --bench index` (PostgreSQL from TEST_POSTGRES_URL, default
//! postgres://postgres@127.0.0.1:5432/postgres; skipped with a message when unreachable).

use std::str::FromStr;
use std::time::{Duration, Instant};

use restaurant_review::config::{DatabaseSettings, PostgresSettings, Settings};
use restaurant_review::db::sql::Statement;
use restaurant_review::db::{Backend, Database, PageAt};
use restaurant_review::startup::Application;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

const RESTAURANTS: i64 = 10_000;
const REVIEWS_PER_RESTAURANT: i64 = 10;
const ITERATIONS: usize = 40;

/// The sample's index query: every request aggregates all reviews.
const AGGREGATE_PER_REQUEST: &str = "SELECT r.id, r.name, COUNT(v.id) AS review_count, CAST(AVG(v.rating) AS DOUBLE PRECISION) AS avg_rating \
     FROM restaurant r LEFT JOIN review v ON v.restaurant_id = r.id \
     GROUP BY r.id, r.name ORDER BY r.name, r.id LIMIT 20";

const SEED_POSTGRES: &[&str] = &[
    "INSERT INTO restaurant (name, street_address, description) \
     SELECT 'Restaurant ' || lpad(i::text, 5, '0'), i || ' Main Street', 'Seeded for the benchmark.' \
     FROM generate_series(1, 10000) AS i",
    "INSERT INTO review (restaurant_id, user_name, rating, review_text, review_date) \
     SELECT r.id, 'user' || j, 1 + (r.id + j) % 5, 'Seeded review.', now() \
     FROM restaurant r CROSS JOIN generate_series(1, 10) AS j",
    "UPDATE restaurant r SET review_count = s.n, rating_sum = s.total \
     FROM (SELECT restaurant_id, COUNT(*) AS n, SUM(rating) AS total FROM review GROUP BY restaurant_id) s \
     WHERE s.restaurant_id = r.id",
    "ANALYZE",
];

const SEED_SQLITE: &[&str] = &[
    "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 10000) \
     INSERT INTO restaurant (name, street_address, description) \
     SELECT 'Restaurant ' || substr('0000' || i, -5), i || ' Main Street', 'Seeded for the benchmark.' FROM seq",
    "WITH RECURSIVE seq(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM seq WHERE j < 10) \
     INSERT INTO review (restaurant_id, user_name, rating, review_text, review_date) \
     SELECT r.id, 'user' || j, 1 + (r.id + j) % 5, 'Seeded review.', '2026-11-23T12:00:00Z' \
     FROM restaurant r CROSS JOIN seq",
    "UPDATE restaurant SET review_count = (SELECT COUNT(*) FROM review WHERE restaurant_id = restaurant.id), \
     rating_sum = (SELECT COALESCE(SUM(rating), 0) FROM review WHERE restaurant_id = restaurant.id)",
    "ANALYZE",
];

/// Runs `work` and says how long it took.
async fn timed<T>(work: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let value = work.await;
    (value, started.elapsed())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

async fn seed(db: &Database) {
    let seed: &[&'static str] = match db.backend() {
        Backend::Postgres => SEED_POSTGRES,
        Backend::Sqlite => SEED_SQLITE,
    };
    for sql in seed {
        db.write(&[Statement::new(sql, &[])])
            .await
            .expect("seeding the database");
    }
    db.refresh_sort_keys().await.expect("making sort keys");
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM restaurant").await,
        RESTAURANTS
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM review").await,
        RESTAURANTS * REVIEWS_PER_RESTAURANT
    );
}

/// Rows `sql` counts, to check the seed.
async fn count(db: &Database, sql: &'static str) -> i64 {
    let (count,): (i64,) = db.fetch_one(sql, &[]).await.expect("counting rows");
    count
}

async fn aggregate_per_request(db: &Database) -> usize {
    let rows: Vec<(i64, String, i64, Option<f64>)> = db
        .fetch_all(AGGREGATE_PER_REQUEST, &[])
        .await
        .expect("the sample's query");
    rows.len()
}

async fn run(label: &str, settings: Settings) {
    let app = Application::build(settings).await.expect("app starts");
    let db = app.database().clone();
    let address = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    seed(&db).await;
    println!(
        "\n[{label}] seeded {RESTAURANTS} restaurants and {} reviews in {:.1} s",
        RESTAURANTS * REVIEWS_PER_RESTAURANT,
        started.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::new();
    let last_page = (RESTAURANTS as u64).div_ceil(20) as u32;
    let (mut ours, mut sample, mut ours_last, mut http_first, mut http_last) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..ITERATIONS + 3 {
        let get =
            |url: String| async { client.get(url).send().await.unwrap().text().await.unwrap() };
        let ((rows, _), a) =
            timed(async { db.restaurant_page(PageAt::First, 20).await.unwrap() }).await;
        let (n, b) = timed(aggregate_per_request(&db)).await;
        let ((last, _), c) =
            timed(async { db.restaurant_page(PageAt::Last, 20).await.unwrap() }).await;
        let (first_page, d) = timed(get(format!("{address}/"))).await;
        let (last_html, e) = timed(get(format!("{address}/?page=last"))).await;
        assert_eq!((rows.len(), n, last.len()), (20, 20, 20));
        assert!(first_page.contains("Restaurant 00001") && last_html.contains("Restaurant 10000"));
        if i >= 3 {
            // The first rounds warm caches and connections.
            ours.push(a);
            sample.push(b);
            ours_last.push(c);
            http_first.push(d);
            http_last.push(e);
        }
    }
    let (ours, sample) = (median(ours), median(sample));
    println!(
        "[{label}] index query, running totals (this app):   {} median of {ITERATIONS}",
        ms(ours)
    );
    println!(
        "[{label}] index query, aggregate per request (sample): {} median of {ITERATIONS}",
        ms(sample)
    );
    println!(
        "[{label}] ratio sample / this app: {:.1}x",
        sample.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "[{label}] last page ({last_page}) query: {}",
        ms(median(ours_last))
    );
    println!(
        "[{label}] GET / through HTTP: {}; GET /?page=last: {}",
        ms(median(http_first)),
        ms(median(http_last))
    );
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::main]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let mut sqlite = Settings::local(data.path());
    sqlite.listen = "127.0.0.1:0".parse().unwrap();
    run("sqlite", sqlite).await;

    let admin_url = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = PgConnectOptions::from_str(&admin_url).unwrap();
    let Ok(mut conn) = PgConnection::connect_with(&admin).await else {
        println!("\n[postgres] skipped: no PostgreSQL at {admin_url}");
        return;
    };
    let name = format!("rr_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut postgres = Settings::local(data.path());
    postgres.listen = "127.0.0.1:0".parse().unwrap();
    postgres.database = DatabaseSettings::Postgres(PostgresSettings {
        host: admin.get_host().to_owned(),
        port: admin.get_port(),
        database: name.clone(),
        user: admin.get_username().to_owned(),
        password: Some(restaurant_review::config::SecretString::from(
            "unused-with-trust-auth",
        )),
        auth: restaurant_review::config::AuthRule::PasswordGiven,
        ssl_mode: PgSslMode::Prefer,
        ssl_root_cert: None,
        max_connection_lifetime: restaurant_review::config::DEFAULT_MAX_CONNECTION_LIFETIME,
        pool_size: restaurant_review::config::DEFAULT_POOL_SIZE,
    });
    run("postgres", postgres).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}
