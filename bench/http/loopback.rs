//! Every route under load against its floor, at each data size, on SQLite and on the
//! machine's PostgreSQL over loopback.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use restaurant_review::db::{Backend, PageAt, Sort, details_page_sql, restaurant_page_sql};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor};

use super::app::{App, Binary, stylesheet_path};
use super::cpu::{CpuPerRequest, measure};
use super::load::{Floor, Load, pgbench, print_row, wrk};
use super::seed::{Pool, Size, sqlx_loop};
use super::{PER_PAGE, SQLITE_POOL, Settings, label};

/// A route under load, and the statement it sends (none for the static ceiling).
struct Route {
    name: &'static str,
    path: String,
    floor: Option<Floor>,
}

/// One backend at one size: every route's load beside its floor.
pub struct Run {
    pub backend: Backend,
    pub size: Size,
    pub rows: Vec<(&'static str, Load, Option<Load>)>,
    /// The same routes served by the earlier build (`BENCH_BEFORE`).
    pub before: Vec<(&'static str, Load)>,
    pub idle_rss_kib: u64,
    /// Pool size → `GET /` at full concurrency (PostgreSQL 100 × 20, `BENCH_POOLS`).
    pub pools: Vec<(usize, Load)>,
}

impl Run {
    pub fn load(&self, name: &str) -> Option<(Load, Option<Load>)> {
        self.rows
            .iter()
            .find(|(route, ..)| *route == name)
            .map(|(_, load, floor)| (*load, *floor))
    }
}

/// A restaurant with `reviews_each` reviews, in the middle of the list.
fn middle_restaurant(size: Size) -> i64 {
    (size.restaurants / 2).max(1)
}

/// The id ending page 499 in name order: where `/?page=500` starts.
async fn page_500_cursor(pool: &Pool, backend: Backend) -> i64 {
    let key = match backend {
        Backend::Postgres => r#"name COLLATE "und-x-icu""#,
        Backend::Sqlite => "name_key",
    };
    let offset = 499 * i64::from(PER_PAGE) - 1;
    pool.integer(&format!(
        "SELECT id FROM restaurant ORDER BY {key}, id LIMIT 1 OFFSET {offset}"
    ))
    .await
}

fn routes(backend: Backend, size: Size, stylesheet: String, page_500: Option<i64>) -> Vec<Route> {
    let per_page = i64::from(PER_PAGE);
    let restaurant_floor = |at, cursor| {
        Some(Floor {
            sql: restaurant_page_sql(backend, Sort::Name, at),
            params: vec![cursor, per_page],
        })
    };
    let id = middle_restaurant(size);
    let details_floor = |at| {
        Some(Floor {
            sql: details_page_sql(at),
            params: vec![id, 0, per_page],
        })
    };
    let mut routes = vec![
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
            // The first and the last page both start at offset 0 (the last reads backwards).
            floor: restaurant_floor(PageAt::First, 0),
        },
        Route {
            name: "/ last page",
            path: "/?page=last".to_owned(),
            floor: restaurant_floor(PageAt::Last, 0),
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
    ];
    routes.extend(
        super::api::routes(backend, id)
            .into_iter()
            .map(|(name, path, floor)| Route {
                name,
                path,
                floor: Some(floor),
            }),
    );
    if let Some(cursor) = page_500 {
        routes.push(Route {
            name: "/?page=500",
            path: "/?page=500".to_owned(),
            floor: restaurant_floor(PageAt::After(cursor), cursor),
        });
    }
    routes
}

/// Seeds a fresh database of `size`, starts the app on it and loads each route beside its floor.
pub async fn bench_one(backend: Backend, size: Size, settings: &Settings) -> Option<Run> {
    let scratch = tempfile::tempdir().unwrap();
    let database_name = format!("rr_bench_{}_{}", std::process::id(), size.restaurants);
    let this = Binary::this_build();
    let (env, pool, pgbench_url) = match backend {
        Backend::Sqlite => {
            let path: PathBuf = scratch.path().join("restaurant-review.sqlite3");
            // The app makes the schema on its first start; the pool opens the same file.
            App::start(&this, &[], scratch.path()).await.stop();
            (vec![], Pool::sqlite(&path, SQLITE_POOL).await, None)
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
            for sql in [
                format!("DROP DATABASE IF EXISTS {database_name} WITH (FORCE)"),
                format!("CREATE DATABASE {database_name}"),
            ] {
                conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
            }
            let url = format!(
                "postgres://{}@{}:{}/{database_name}?sslmode=disable",
                admin.get_username(),
                admin.get_host(),
                admin.get_port()
            );
            let env = vec![("DATABASE_URL", url.clone())];
            App::start(&this, &env, scratch.path()).await.stop();
            (env, Pool::postgres(&url).await, Some(url))
        }
    };
    let started = Instant::now();
    pool.seed(backend, size).await;
    println!(
        "\n[{} {}] seeded in {:.1} s",
        label(backend),
        size.label(),
        started.elapsed().as_secs_f64()
    );

    // The seeded rows have no sort and search keys yet: the first start makes them all (once,
    // as after an upgrade), which is not what an idle app holds. Measure that start apart,
    // then idle on a start like every later one.
    let first_start = App::start(&this, &env, scratch.path()).await;
    let key_making_peak_kib = first_start.memory_kib("VmHWM:");
    first_start.stop();
    let page_500 = if size.restaurants >= 500 * i64::from(PER_PAGE) {
        Some(page_500_cursor(&pool, backend).await)
    } else {
        None
    };
    let app = App::start(&this, &env, scratch.path()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_kib = app.memory_kib("VmRSS:");
    let stylesheet = stylesheet_path(&app.base).await;
    let routes = routes(backend, size, stylesheet, page_500);
    let mut rows = Vec::new();
    let connections = settings.connections;
    for route in &routes {
        let (load, cpu) = warm_and_measure(&app.base, &route.path, settings);
        let mut floor_cpu = None;
        let floor = match (&route.floor, &pgbench_url) {
            (Some(floor), Some(url)) => {
                let (floor, cpu) = measure(settings.seconds, || {
                    pgbench(url, floor, connections, settings.seconds, scratch.path())
                });
                floor_cpu = Some(cpu);
                Some(floor)
            }
            (Some(floor), None) => {
                Some(sqlx_loop(&pool, floor, connections, settings.seconds).await)
            }
            (None, _) => None,
        };
        print_row(route.name, load, floor);
        if let Some(floor_cpu) = floor_cpu {
            println!("      app:   {cpu}\n      floor: {floor_cpu}");
        }
        rows.push((route.name, load, floor));
    }
    println!(
        "    app memory: idle {} MiB, after the loads {} MiB, peak {} MiB \
         (the first start after seeding, making {} restaurants' keys: peak {} MiB)",
        idle_rss_kib / 1024,
        app.memory_kib("VmRSS:") / 1024,
        app.memory_kib("VmHWM:") / 1024,
        size.restaurants,
        key_making_peak_kib / 1024
    );
    app.stop();

    let mut before = Vec::new();
    if let Some(earlier) = &settings.before {
        let app = App::start(earlier, &env, scratch.path()).await;
        println!("    {}:", earlier.label);
        for route in &routes {
            let load = warm_and_load(&app.base, &route.path, settings);
            print_row(route.name, load, None);
            before.push((route.name, load));
        }
        app.stop();
    }

    let mut pools = Vec::new();
    if backend == Backend::Postgres && size.restaurants == 100 && settings.pools {
        println!("    pool size (DB_POOL_SIZE), GET / at {connections} connections:");
        for pool_size in [2usize, 4, 8, 16, 32] {
            let mut env = env.clone();
            env.push(("DB_POOL_SIZE", pool_size.to_string()));
            let app = App::start(&this, &env, scratch.path()).await;
            let load = warm_and_load(&app.base, "/", settings);
            print_row(&format!("pool {pool_size}"), load, None);
            pools.push((pool_size, load));
            app.stop();
        }
    }

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
    Some(Run {
        backend,
        size,
        rows,
        before,
        idle_rss_kib,
        pools,
    })
}

/// [`warm_and_load`], and where the CPU went during the measured load.
pub fn warm_and_measure(base: &str, path: &str, settings: &Settings) -> (Load, CpuPerRequest) {
    let url = format!("{base}{path}");
    wrk(&url, settings.connections, 1);
    measure(settings.seconds, || {
        wrk(&url, settings.connections, settings.seconds)
    })
}

/// A short warm-up (connections, prepared statements, the compressed assets made in the
/// background), then the measured load.
pub fn warm_and_load(base: &str, path: &str, settings: &Settings) -> Load {
    let url = format!("{base}{path}");
    wrk(&url, settings.connections, 1);
    wrk(&url, settings.connections, settings.seconds)
}
