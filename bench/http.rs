//! The whole-app benchmark: every route under load against its floor, at three data sizes, on
//! SQLite and on PostgreSQL, measured side by side in one run.
//!
//! For each backend and size (100 × 20, 10,000 × 100 and 100,000 × 10 restaurants × reviews)
//! it seeds a fresh database, starts the real binary (this profile's build, as its own
//! process, so its memory is its own), and loads each route with wrk; right after each route
//! it runs the route's floor: the same SQL the route sends (taken from the library, not
//! copied), with the same parameters and concurrency, straight against the database: pgbench
//! on PostgreSQL, and on SQLite (which has no server to bench) a loop of the same query
//! through sqlx in this process on a pool the size of the app's. The static route is the HTTP
//! stack's ceiling. It prints req/s, p50, p99 and each route's ratio to its floor, the app's
//! resident memory, and whether each of the performance issue's targets is met.
//!
//! Run: `bash scripts/bench.sh` (installs wrk when missing, then this and the photo benchmark), or
//! `cargo bench --bench http`. Settings: `BENCH_SECONDS` per load (default 5),
//! `BENCH_CONNECTIONS` (default 32), `BENCH_SIZES` (e.g. `100x20,10000x100`),
//! `BENCH_BACKENDS` (`sqlite,postgres`), `TEST_POSTGRES_URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres, trust auth).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use restaurant_review::db::{Backend, PageAt, Sort, details_page_sql, restaurant_page_sql};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, Executor};

/// What the app's pages show at once (`RESTAURANTS_PER_PAGE`, `REVIEWS_PER_PAGE`).
const PER_PAGE: u32 = 20;
/// The app's pool sizes (src/db/mod.rs), for the in-process floors.
const SQLITE_POOL: u32 = 8;
const POSTGRES_POOL: u32 = 10;

#[derive(Clone, Copy, Debug)]
struct Size {
    restaurants: i64,
    reviews_each: i64,
}

impl Size {
    fn label(self) -> String {
        format!("{}×{}", thousands(self.restaurants), self.reviews_each)
    }
}

/// Throughput and latency of one load.
#[derive(Clone, Copy, Default)]
struct Load {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

#[derive(Clone)]
struct Settings {
    seconds: u64,
    connections: u32,
    sizes: Vec<Size>,
    backends: Vec<Backend>,
    admin_url: String,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let sizes = var("BENCH_SIZES")
            .unwrap_or_else(|| "100x20,10000x100,100000x10".to_owned())
            .split(',')
            .map(|size| {
                let (r, v) = size
                    .trim()
                    .split_once('x')
                    .expect("BENCH_SIZES: like 100x20");
                Size {
                    restaurants: r.parse().expect("BENCH_SIZES: restaurants"),
                    reviews_each: v.parse().expect("BENCH_SIZES: reviews"),
                }
            })
            .collect();
        let backends = var("BENCH_BACKENDS")
            .unwrap_or_else(|| "sqlite,postgres".to_owned())
            .split(',')
            .map(|b| match b.trim() {
                "sqlite" => Backend::Sqlite,
                "postgres" => Backend::Postgres,
                other => panic!("BENCH_BACKENDS: unknown backend {other:?}"),
            })
            .collect();
        Self {
            seconds: var("BENCH_SECONDS").map_or(5, |s| s.parse().expect("BENCH_SECONDS")),
            connections: var("BENCH_CONNECTIONS")
                .map_or(32, |s| s.parse().expect("BENCH_CONNECTIONS")),
            sizes,
            backends,
            admin_url: var("TEST_POSTGRES_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        }
    }
}

/// A route under load, and the statement it sends (none for the static ceiling).
struct Route {
    name: &'static str,
    path: String,
    floor: Option<Floor>,
}

/// A statement and its parameters, all integers.
#[derive(Clone)]
struct Floor {
    sql: &'static str,
    params: Vec<i64>,
}

/// One backend at one size: every route's load beside its floor.
struct Run {
    backend: Backend,
    size: Size,
    rows: Vec<(&'static str, Load, Option<Load>)>,
    idle_rss_kib: u64,
    loaded_rss_kib: u64,
    peak_rss_kib: u64,
}

impl Run {
    fn load(&self, name: &str) -> Option<(Load, Option<Load>)> {
        self.rows
            .iter()
            .find(|(route, ..)| *route == name)
            .map(|(_, load, floor)| (*load, *floor))
    }
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

/// wrk's latency figures ("812.00us", "1.52ms", "2.01s").
fn wrk_duration(text: &str) -> Duration {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        panic!("wrk latency {text:?}")
    };
    Duration::from_secs_f64(number.parse::<f64>().expect("wrk latency") * scale)
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn wrk(url: &str, settings: &Settings) -> Load {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{}", settings.connections)])
        .arg(format!("-d{}s", settings.seconds))
        .args(["--latency", "--timeout", "10s", url])
        .output()
        .expect("running wrk (bash scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed on {url}:\n{text}");
    assert!(
        !text.contains("Non-2xx or 3xx"),
        "{url} answered errors under load:\n{text}"
    );
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => load.p50 = wrk_duration(v),
            (Some("99%"), Some(v)) => load.p99 = wrk_duration(v),
            (Some("Requests/sec:"), Some(v)) => load.per_second = v.parse().expect("wrk req/s"),
            _ => {}
        }
    }
    assert!(load.per_second > 0.0, "no requests/s from wrk:\n{text}");
    load
}

/// The statement as a pgbench script: `$n` become pgbench variables, sent as parameters of a
/// prepared statement (`-M prepared`), as sqlx sends them.
fn pgbench_script(floor: &Floor) -> String {
    let mut script = String::new();
    for (i, value) in floor.params.iter().enumerate() {
        writeln!(script, "\\set p{} {value}", i + 1).unwrap();
    }
    let mut sql = floor.sql.to_owned();
    // Highest first, so `$1` does not eat the start of `$10`.
    for i in (1..=floor.params.len()).rev() {
        sql = sql.replace(&format!("${i}"), &format!(":p{i}"));
    }
    writeln!(script, "{sql};").unwrap();
    script
}

fn pgbench(database_url: &str, floor: &Floor, settings: &Settings, scratch: &Path) -> Load {
    let script = scratch.join("floor.sql");
    std::fs::write(&script, pgbench_script(floor)).unwrap();
    let logs = scratch.join("pgbench-log");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let output = Command::new("pgbench")
        .current_dir(&logs)
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg(format!("-c{}", settings.connections))
        .arg(format!("-T{}", settings.seconds))
        // A tenth of the transactions logged, for the percentiles.
        .args(["--log", "--sampling-rate", "0.1", "-f"])
        .arg(&script)
        .arg(database_url)
        .output()
        .expect("running pgbench (from PostgreSQL's packages)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let per_second = text
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tps from pgbench:\n{text}"));
    // Each log line: client, transaction, latency in µs, script, epoch s, µs.
    let mut latencies: Vec<Duration> = std::fs::read_dir(&logs)
        .unwrap()
        .flat_map(|entry| {
            std::fs::read_to_string(entry.unwrap().path())
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
        .map(Duration::from_micros)
        .collect();
    latencies.sort();
    Load {
        per_second,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

/// The statement run in a loop by `settings.connections` tasks on a pool of `pool_size`, for
/// `settings.seconds`: the floor where there is no pgbench (SQLite), and the driver's own cost
/// on PostgreSQL.
async fn sqlx_loop(database: &Pool, floor: &Floor, settings: &Settings) -> Load {
    let deadline = Instant::now() + Duration::from_secs(settings.seconds);
    let tasks: Vec<_> = (0..settings.connections)
        .map(|_| {
            let database = database.clone();
            let floor = floor.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    match &database {
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
    let elapsed = started.elapsed().max(Duration::from_secs(settings.seconds));
    latencies.sort();
    Load {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Pool::Sqlite(pool) => pool.execute(sql).await.map(drop),
            Pool::Postgres(pool) => pool.execute(sql).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("seeding: {e}"));
    }

    async fn count(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        match self {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap()
    }

    async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
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
        Backend::Sqlite => {
            vec![
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
            ]
        }
    }
}

/// The release binary as its own process, configured by environment like on App Service.
struct App {
    child: Child,
    base: String,
}

impl App {
    async fn start(env: &[(&str, String)], data_dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_restaurant-review"));
        command
            .current_dir(data_dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // The default log level (info, request spans on), as people run it.
            .env("PORT", port.to_string())
            .env("DATA_DIR", data_dir)
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

    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|line| line.starts_with(field))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hashed URL of the stylesheet, read off the page as a browser would.
async fn stylesheet_path(base: &str) -> String {
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

/// A restaurant with `reviews_each` reviews, in the middle of the list.
fn middle_restaurant(size: Size) -> i64 {
    (size.restaurants / 2).max(1)
}

fn routes(backend: Backend, size: Size, stylesheet: String) -> Vec<Route> {
    let per_page = i64::from(PER_PAGE);
    let restaurant_floor = |at| {
        // The first and the last page both start at offset 0 (the last reads backwards).
        Some(Floor {
            sql: restaurant_page_sql(backend, Sort::Name, at),
            params: vec![0, per_page],
        })
    };
    let id = middle_restaurant(size);
    let details_floor = |at| {
        Some(Floor {
            sql: details_page_sql(at),
            params: vec![id, 0, per_page],
        })
    };
    vec![
        Route {
            name: "static (ceiling)",
            path: stylesheet,
            floor: None,
        },
        Route {
            name: "/health",
            path: "/health".to_owned(),
            floor: Some(Floor {
                sql: "SELECT 1",
                params: vec![],
            }),
        },
        Route {
            name: "/ first page",
            path: "/".to_owned(),
            floor: restaurant_floor(PageAt::First),
        },
        Route {
            name: "/ last page",
            path: "/?page=last".to_owned(),
            floor: restaurant_floor(PageAt::Last),
        },
        Route {
            name: "/<id>/ first page",
            path: format!("/{id}/"),
            floor: details_floor(PageAt::First),
        },
        Route {
            name: "/<id>/ last page",
            path: format!("/{id}/?page=last"),
            floor: details_floor(PageAt::Last),
        },
    ]
}

async fn bench_one(backend: Backend, size: Size, settings: &Settings) -> Option<Run> {
    let scratch = tempfile::tempdir().unwrap();
    let database_name = format!("rr_bench_{}_{}", std::process::id(), size.restaurants);
    let (env, pool, pgbench_url) = match backend {
        Backend::Sqlite => {
            let path: PathBuf = scratch.path().join("restaurant-review.sqlite3");
            let options = SqliteConnectOptions::from_str("sqlite:")
                .unwrap()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            // The app makes the schema on its first start; the pool opens the same file.
            App::start(&[], scratch.path()).await.stop();
            let pool = SqlitePoolOptions::new()
                .max_connections(SQLITE_POOL)
                .connect_with(options)
                .await
                .unwrap();
            (vec![], Pool::Sqlite(pool), None)
        }
        Backend::Postgres => {
            let admin = PgConnectOptions::from_str(&settings.admin_url).unwrap();
            let Ok(mut conn) = sqlx::PgConnection::connect_with(&admin).await else {
                println!(
                    "[postgres] skipped: no PostgreSQL at {}",
                    settings.admin_url
                );
                return None;
            };
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {database_name} WITH (FORCE)"
            )))
            .await
            .unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {database_name}"
            )))
            .await
            .unwrap();
            let options = admin.clone().database(&database_name);
            let url = format!(
                "postgres://{}:unused-with-trust-auth@{}:{}/{database_name}?sslmode=disable",
                admin.get_username(),
                admin.get_host(),
                admin.get_port()
            );
            let env = vec![("DATABASE_URL", url.clone())];
            App::start(&env, scratch.path()).await.stop();
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_POOL)
                .connect_with(options)
                .await
                .unwrap();
            (env, Pool::Postgres(pool), Some(url))
        }
    };
    let started = Instant::now();
    for sql in seed_statements(backend, size) {
        pool.execute(&sql).await;
    }
    assert_eq!(pool.count("restaurant").await, size.restaurants);
    assert_eq!(
        pool.count("review").await,
        size.restaurants * size.reviews_each
    );
    let backend_label = label(backend);
    println!(
        "\n[{backend_label} {}] seeded in {:.1} s",
        size.label(),
        started.elapsed().as_secs_f64()
    );

    // The seeded rows have no sort and search keys yet: the first start makes them all (once,
    // as after an upgrade), which is not what an idle app holds. Measure that start apart,
    // then idle on a start like every later one.
    let first_start = App::start(&env, scratch.path()).await;
    let key_making_peak_kib = first_start.memory_kib("VmHWM:");
    first_start.stop();
    let app = App::start(&env, scratch.path()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = app.memory_kib("VmRSS:");
    let stylesheet = stylesheet_path(&app.base).await;
    let mut rows = Vec::new();
    for route in routes(backend, size, stylesheet) {
        let url = format!("{}{}", app.base, route.path);
        // A short warm-up: connections, caches, the compressed assets made in the background.
        wrk(
            &url,
            &Settings {
                seconds: 1,
                ..settings.clone()
            },
        );
        let load = wrk(&url, settings);
        let floor = match (&route.floor, &pgbench_url) {
            (Some(floor), Some(url)) => Some(pgbench(url, floor, settings, scratch.path())),
            (Some(floor), None) => Some(sqlx_loop(&pool, floor, settings).await),
            (None, _) => None,
        };
        print_row(route.name, load, floor);
        rows.push((route.name, load, floor));
    }
    // The driver alone on PostgreSQL: where between pgbench and the app the time goes.
    if pgbench_url.is_some() {
        for route in routes(backend, size, String::new()) {
            if let (Some(floor), "/health" | "/ first page") = (&route.floor, route.name) {
                let through_sqlx = sqlx_loop(&pool, floor, settings).await;
                println!(
                    "    {:<22} the same SQL through sqlx in-process (pool {POSTGRES_POOL}): {:>9.0}/s  p50 {}  p99 {}",
                    route.name,
                    through_sqlx.per_second,
                    ms(through_sqlx.p50),
                    ms(through_sqlx.p99)
                );
            }
        }
    }
    let run = Run {
        backend,
        size,
        rows,
        idle_rss_kib,
        loaded_rss_kib: app.memory_kib("VmRSS:"),
        peak_rss_kib: app.memory_kib("VmHWM:"),
    };
    println!(
        "    app memory: idle {} MiB, after the loads {} MiB, peak {} MiB \
         (the first start after seeding, making {} restaurants' keys: peak {} MiB)",
        run.idle_rss_kib / 1024,
        run.loaded_rss_kib / 1024,
        run.peak_rss_kib / 1024,
        size.restaurants,
        key_making_peak_kib / 1024
    );
    app.stop();
    pool.close().await;
    if backend == Backend::Postgres {
        let admin = PgConnectOptions::from_str(&settings.admin_url).unwrap();
        let mut conn = sqlx::PgConnection::connect_with(&admin).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {database_name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    }
    Some(run)
}

fn label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn print_row(name: &str, load: Load, floor: Option<Load>) {
    let mut line = format!(
        "    {name:<22} {:>9.0} req/s  p50 {:>9}  p99 {:>9}",
        load.per_second,
        ms(load.p50),
        ms(load.p99)
    );
    if let Some(floor) = floor {
        write!(
            line,
            "   floor {:>9.0}/s  p50 {:>9}  p99 {:>9}   ratio {:>5.1}%",
            floor.per_second,
            ms(floor.p50),
            ms(floor.p99),
            100.0 * load.per_second / floor.per_second
        )
        .unwrap();
    }
    println!("{line}");
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The performance issue's targets, from this run's figures.
fn targets(runs: &[Run]) {
    println!("\n== Targets");
    let find = |backend: Backend, restaurants: i64| {
        runs.iter()
            .find(|run| run.backend == backend && run.size.restaurants == restaurants)
    };
    if let Some(small) = find(Backend::Postgres, 100) {
        for route in ["/ first page", "/<id>/ first page", "/health"] {
            if let Some((load, Some(floor))) = small.load(route) {
                let ratio = load.per_second / floor.per_second;
                println!(
                    "  postgres 100×20 {route:<18} {:>5.1}% of its floor (target ≥ 50%): {}",
                    100.0 * ratio,
                    verdict(ratio >= 0.5)
                );
            }
        }
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(small) = find(backend, 100) else {
            continue;
        };
        for run in runs
            .iter()
            .filter(|run| run.backend == backend && run.size.restaurants != 100)
        {
            for (route, baseline) in [
                ("/ first page", "/ first page"),
                ("/ last page", "/ first page"),
                ("/<id>/ first page", "/<id>/ first page"),
                ("/<id>/ last page", "/<id>/ first page"),
            ] {
                let (Some((load, _)), Some((base, _))) = (run.load(route), small.load(baseline))
                else {
                    continue;
                };
                // "Within 1.3× of the first page at 100 × 20": time per page, so throughput.
                let slower = base.per_second / load.per_second;
                println!(
                    "  {} {:<11} {route:<18} {slower:>4.2}× the time of {baseline} at 100×20 (target ≤ 1.3×): {}",
                    label(backend),
                    run.size.label(),
                    verdict(slower <= 1.3)
                );
            }
        }
    }
    if let Some(idle) = runs.iter().map(|run| run.idle_rss_kib).max() {
        println!(
            "  idle RSS, the largest of the runs: {} MiB (target ≤ 20 MiB): {}",
            idle / 1024,
            verdict(idle <= 20 * 1024)
        );
    }
    println!("  (photo targets: printed by `cargo bench --bench photos`)");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut settings = Settings::from_env();
    // `cargo test --all-targets` (the suite) runs this binary too, without `--bench`: then a
    // smoke run, one small size with one-second loads, checks that the benchmark still works
    // without spending the suite's time (the full run takes 20 minutes).
    if !std::env::args().any(|arg| arg == "--bench") {
        if !installed("wrk") {
            println!(
                "benchmark skipped under cargo test: no wrk (bash scripts/bench.sh installs it)"
            );
            return;
        }
        if !installed("pgbench") {
            println!("PostgreSQL left out of the smoke run: no pgbench");
            settings
                .backends
                .retain(|backend| *backend == Backend::Sqlite);
        }
        println!(
            "smoke run under cargo test (the figures of a debug build mean nothing): `bash scripts/bench.sh` runs the benchmark"
        );
        settings.sizes = vec![Size {
            restaurants: 100,
            reviews_each: 20,
        }];
        settings.seconds = 1;
    }
    println!(
        "wrk -t2 -c{} -d{}s per route; floors at the same concurrency; {} cores",
        settings.connections,
        settings.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut runs = Vec::new();
    for &backend in &settings.backends {
        for &size in &settings.sizes {
            if let Some(run) = bench_one(backend, size, &settings).await {
                runs.push(run);
            }
        }
    }
    targets(&runs);
}
