//! PostgreSQL at Azure's distance: the pages over a link with `BENCH_RTT_MS` round-trip time
//! (default 1 ms, App Service to a Flexible Server in its region) beside pgbench over the same
//! link; one connection (latency) and full concurrency (throughput), each pool size, and the
//! connection cuts and restart.

use std::time::Duration;

use restaurant_review::db::{Backend, PageAt, Sort, details_page_sql, restaurant_page_sql};
use sqlx::{Connection, Executor};

use super::app::{App, Binary};
use super::cpu::measure;
use super::faults::{self, FaultRun};
use super::link::distant_cluster;
use super::load::{Floor, Load, ms, pgbench, print_row, wrk};
use super::loopback::{warm_and_load, warm_and_measure};
use super::seed::{Pool, Size};
use super::{PER_PAGE, Settings};

const SIZE: Size = Size {
    restaurants: 100,
    reviews_each: 20,
};

pub struct DistanceRun {
    pub rtt: Duration,
    /// pgbench `SELECT 1` at one client: the round trip as measured, server time included.
    pub measured_rtt: Duration,
    /// (route, one connection, full concurrency, its pgbench floor at full concurrency)
    pub rows: Vec<(&'static str, Load, Load, Load)>,
    pub before: Vec<(&'static str, Load, Load)>,
    pub pools: Vec<(usize, Load)>,
    pub faults: Option<FaultRun>,
    pub faults_before: Option<FaultRun>,
}

pub async fn run(settings: &Settings) -> Option<DistanceRun> {
    let rtt = settings.rtt;
    let Some(distant) = distant_cluster(rtt) else {
        println!("\n[postgres at a distance] skipped: no PostgreSQL server binaries");
        return None;
    };
    println!(
        "\n[postgres {} ms away, {}] {}",
        rtt.as_secs_f64() * 1e3,
        SIZE.label(),
        distant.how
    );
    let mut admin = sqlx::PgConnection::connect(&distant.url("postgres"))
        .await
        .expect("the distant cluster answers");
    admin
        .execute("CREATE DATABASE restaurant")
        .await
        .expect("creating the database");
    let url = distant.url("restaurant");
    let scratch = tempfile::tempdir().unwrap();
    let env = vec![("DATABASE_URL", url.clone())];
    let this = Binary::this_build();
    App::start(&this, &env, scratch.path()).await.stop();
    let pool = Pool::postgres(&url).await;
    pool.seed(Backend::Postgres, SIZE).await;
    pool.close().await;

    let seconds = settings.seconds;
    let select_1 = Floor {
        sql: "SELECT 1",
        params: vec![],
    };
    let measured_rtt = pgbench(&url, &select_1, 1, seconds.min(3), scratch.path()).p50;
    println!(
        "    round trip measured by pgbench SELECT 1 at one client: p50 {}",
        ms(measured_rtt)
    );
    let id = SIZE.restaurants / 2;
    let per_page = i64::from(PER_PAGE);
    let routes: Vec<(&'static str, String, Floor)> = vec![
        ("/health", "/health".into(), select_1.clone()),
        (
            "/ first page",
            "/".into(),
            Floor {
                sql: restaurant_page_sql(Backend::Postgres, Sort::Name, PageAt::First),
                params: vec![0, per_page],
            },
        ),
        (
            "/<id>/ first page",
            format!("/{id}/"),
            Floor {
                sql: details_page_sql(PageAt::First),
                params: vec![id, 0, per_page],
            },
        ),
    ];
    let mut rows = Vec::new();
    let app = App::start(&this, &env, scratch.path()).await;
    for (name, path, floor) in &routes {
        let single = one_connection(&app.base, path, settings);
        let (full, cpu) = warm_and_measure(&app.base, path, settings);
        let floor_single = pgbench(&url, floor, 1, seconds, scratch.path());
        let (floor_full, floor_cpu) = measure(seconds, || {
            pgbench(&url, floor, settings.connections, seconds, scratch.path())
        });
        println!("    {name}");
        print_row("  1 connection", single, Some(floor_single));
        print_row(
            &format!("  {} connections", settings.connections),
            full,
            Some(floor_full),
        );
        println!("        app:   {cpu}\n        floor: {floor_cpu}");
        rows.push((*name, single, full, floor_full));
    }
    app.stop();

    let mut before = Vec::new();
    if let Some(earlier) = &settings.before {
        println!("    {}:", earlier.label);
        let app = App::start(earlier, &env, scratch.path()).await;
        for (name, path, _) in &routes {
            let single = one_connection(&app.base, path, settings);
            let full = warm_and_load(&app.base, path, settings);
            print_row(&format!("{name}, 1 connection"), single, None);
            print_row(
                &format!("{name}, {} connections", settings.connections),
                full,
                None,
            );
            before.push((*name, single, full));
        }
        app.stop();
    }

    let mut pools = Vec::new();
    if settings.pools {
        println!(
            "    pool size (DB_POOL_SIZE), GET / at {} connections:",
            settings.connections
        );
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

    let (mut fault_run, mut fault_run_before) = (None, None);
    if settings.faults {
        let paths = ["/".to_owned(), format!("/{id}/")];
        let mut binaries = vec![(this.clone(), &mut fault_run)];
        if let Some(earlier) = &settings.before {
            binaries.push((earlier.clone(), &mut fault_run_before));
        }
        for (binary, slot) in binaries {
            let app = App::start(&binary, &env, scratch.path()).await;
            let run =
                faults::run(&app.base, &paths, &distant.cluster, settings.fault_seconds).await;
            println!(
                "    cuts and a restart ({}): {} requests, {} failed outside the restart, {} during it ({:.1} s down); {} sessions ended{}",
                binary.label,
                run.requests,
                run.failed_outside,
                run.failed_during,
                run.down.as_secs_f64(),
                run.sessions_ended,
                if run.examples.is_empty() {
                    String::new()
                } else {
                    format!("; e.g. {}", run.examples.join("; "))
                }
            );
            *slot = Some(run);
            app.stop();
        }
    }
    Some(DistanceRun {
        rtt,
        measured_rtt,
        rows,
        before,
        pools,
        faults: fault_run,
        faults_before: fault_run_before,
    })
}

/// One connection, one request at a time: the latency a visitor sees on a quiet site.
fn one_connection(base: &str, path: &str, settings: &Settings) -> Load {
    let url = format!("{base}{path}");
    wrk(&url, 1, 1);
    wrk(&url, 1, settings.seconds)
}
