//! Seeding the benchmark's databases, and the SQLite floor (a loop of the route's statement
//! through sqlx in this process: SQLite has no server to bench).

use std::str::FromStr;
use std::time::{Duration, Instant};

use restaurant_review::db::Backend;
use sqlx::Executor;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::load::{Floor, Load, percentile};

#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub restaurants: i64,
    pub reviews_each: i64,
}

impl Size {
    pub fn label(self) -> String {
        format!(
            "{}×{}",
            super::load::thousands(self.restaurants),
            self.reviews_each
        )
    }
}

/// A pool on the benchmark's database, for seeding and the SQLite floor.
#[derive(Clone)]
pub enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    pub async fn sqlite(path: &std::path::Path, size: u32) -> Self {
        let options = SqliteConnectOptions::from_str("sqlite:")
            .unwrap()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Pool::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(size)
                .connect_with(options)
                .await
                .unwrap(),
        )
    }

    pub async fn postgres(url: &str) -> Self {
        let options = PgConnectOptions::from_str(url).unwrap();
        Pool::Postgres(
            PgPoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .unwrap(),
        )
    }

    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Pool::Sqlite(pool) => pool.execute(sql).await.map(drop),
            Pool::Postgres(pool) => pool.execute(sql).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("seeding: {e}"));
    }

    /// The single integer `sql` returns.
    pub async fn integer(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// Seeds `size` and checks it.
    pub async fn seed(&self, backend: Backend, size: Size) {
        for sql in seed_statements(backend, size) {
            self.execute(&sql).await;
        }
        assert_eq!(
            self.integer("SELECT COUNT(*) FROM restaurant").await,
            size.restaurants
        );
        assert_eq!(
            self.integer("SELECT COUNT(*) FROM review").await,
            size.restaurants * size.reviews_each
        );
    }
}

/// Restaurants named like people name them (accents, mixed case), each with its reviews and
/// running totals, as the app would have stored them. SQLite's sort keys are left for the
/// app to make at its next start, as it does for rows written with plain SQL.
fn seed_statements(backend: Backend, size: Size) -> Vec<String> {
    let Size {
        restaurants,
        reviews_each,
    } = size;
    let names = "(ARRAY['Café','apple tree','Zum Löwen','Äpfel & Birnen','Trattoria','sushi bar','Le Petit','Öl & Essig'])";
    match backend {
        Backend::Postgres => vec![
            format!(
                "INSERT INTO restaurant (name, street_address, description) \
                 SELECT {names}[1 + i % 8] || ' ' || i, i || ' Main Street', 'Seeded for the benchmark.' \
                 FROM generate_series(1, {restaurants}) AS i"
            ),
            format!(
                "INSERT INTO review (restaurant_id, user_name, rating, review_text, review_date) \
                 SELECT r.id, 'user' || j, 1 + (r.id + j) % 5, 'Seeded review, long enough to look like one people write.', now() - j * interval '1 hour' \
                 FROM restaurant r CROSS JOIN generate_series(1, {reviews_each}) AS j ORDER BY r.id, j"
            ),
            "UPDATE restaurant r SET review_count = s.n, rating_sum = s.total \
             FROM (SELECT restaurant_id, COUNT(*) AS n, SUM(rating) AS total FROM review GROUP BY restaurant_id) s \
             WHERE s.restaurant_id = r.id"
                .to_owned(),
            "VACUUM ANALYZE".to_owned(),
        ],
        Backend::Sqlite => vec![
            format!(
                "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {restaurants}) \
                 INSERT INTO restaurant (name, street_address, description) \
                 SELECT CASE i % 8 WHEN 0 THEN 'Café' WHEN 1 THEN 'apple tree' WHEN 2 THEN 'Zum Löwen' \
                 WHEN 3 THEN 'Äpfel & Birnen' WHEN 4 THEN 'Trattoria' WHEN 5 THEN 'sushi bar' \
                 WHEN 6 THEN 'Le Petit' ELSE 'Öl & Essig' END || ' ' || i, \
                 i || ' Main Street', 'Seeded for the benchmark.' FROM seq"
            ),
            format!(
                "WITH RECURSIVE seq(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM seq WHERE j < {reviews_each}) \
                 INSERT INTO review (restaurant_id, user_name, rating, review_text, review_date) \
                 SELECT r.id, 'user' || j, 1 + (r.id + j) % 5, 'Seeded review, long enough to look like one people write.', '2026-11-23T12:00:00Z' \
                 FROM restaurant r CROSS JOIN seq ORDER BY r.id, j"
            ),
            "UPDATE restaurant SET review_count = (SELECT COUNT(*) FROM review WHERE restaurant_id = restaurant.id), \
             rating_sum = (SELECT COALESCE(SUM(rating), 0) FROM review WHERE restaurant_id = restaurant.id)"
                .to_owned(),
            "ANALYZE".to_owned(),
        ],
    }
}

/// The statement run in a loop by `connections` tasks on `pool` for `seconds`: the floor where
/// there is no pgbench (SQLite).
pub async fn sqlx_loop(pool: &Pool, floor: &Floor, connections: u32, seconds: u64) -> Load {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let pool = pool.clone();
            let floor = floor.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    match &pool {
                        Pool::Sqlite(pool) => {
                            let mut query = sqlx::query(floor.sql);
                            for value in &floor.params {
                                query = query.bind(*value);
                            }
                            query.fetch_all(pool).await.expect("floor query");
                        }
                        Pool::Postgres(pool) => {
                            let mut query = sqlx::query(floor.sql);
                            for value in &floor.params {
                                query = query.bind(*value);
                            }
                            query.fetch_all(pool).await.expect("floor query");
                        }
                    }
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().max(Duration::from_secs(seconds));
    latencies.sort();
    Load {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}
