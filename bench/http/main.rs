//! The whole-app benchmark: every route under load against its floor, measured side by side in
//! one run.
//!
//! - Loopback (loopback.rs): for each backend and size (100 × 20, 10,000 × 100 and 100,000 × 10
//!   restaurants × reviews) a fresh database is seeded, the real binary started (this profile's
//!   build, as its own process, so its memory is its own) and each route loaded with wrk; right
//!   after each route its floor runs: the same SQL the route sends (taken from the library, not
//!   copied), with the same parameters and concurrency, straight against the database
//!   (pgbench on PostgreSQL; on SQLite, which has no server, a loop of the query through sqlx
//!   in this process). The static route is the HTTP stack's ceiling. At 10,000 restaurants and
//!   more, `/?page=500` too. The JSON API's list and one restaurant (api.rs) beside the pages.
//! - Distance (distance.rs): PostgreSQL `BENCH_RTT_MS` away (default 1 ms, App Service to a
//!   Flexible Server in its region) over a link this benchmark makes (link.rs): latency at one
//!   connection and throughput at full concurrency beside pgbench over the same link; the
//!   pool sizes; and connections cut every 10 s under load with one restart (faults.rs).
//!
//! `BENCH_BEFORE=<path of an earlier build>` loads the same routes on that build right after
//! this one, for before-and-after figures from one run.
//!
//! Run: `bash scripts/bench.sh` (installs wrk when missing, then this and the photo benchmark),
//! or `cargo bench --bench http`. Settings: `BENCH_SECONDS` per load (default 5),
//! `BENCH_CONNECTIONS` (default 32), `BENCH_SIZES` (e.g. `100x20,10000x100`),
//! `BENCH_BACKENDS` (`sqlite,postgres`), `BENCH_SECTIONS` (`loopback,distance`),
//! `BENCH_POOLS=0` to skip the pool sizes, `BENCH_FAULT_SECONDS` (default 40; 0 skips),
//! `BENCH_RTT_MS`, `BENCH_BEFORE`, `TEST_POSTGRES_URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres, trust auth).

mod api;
mod app;
mod cluster;
mod cpu;
mod distance;
mod faults;
mod link;
mod load;
mod loopback;
mod proc_stat;
mod seed;

use std::time::Duration;

use restaurant_review::db::Backend;

use app::Binary;
use distance::DistanceRun;
use load::{installed, ms, verdict};
use loopback::Run;
use seed::Size;

/// What the app's pages show at once (`RESTAURANTS_PER_PAGE`, `REVIEWS_PER_PAGE`).
const PER_PAGE: u32 = 20;
/// The app's SQLite pool size (src/db/mod.rs), for the in-process floor.
const SQLITE_POOL: u32 = 8;

#[derive(Clone)]
pub struct Settings {
    seconds: u64,
    connections: u32,
    sizes: Vec<Size>,
    backends: Vec<Backend>,
    admin_url: String,
    loopback: bool,
    distance: bool,
    pools: bool,
    faults: bool,
    fault_seconds: u64,
    rtt: Duration,
    before: Option<Binary>,
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
        let sections = var("BENCH_SECTIONS").unwrap_or_else(|| "loopback,distance".into());
        let fault_seconds =
            var("BENCH_FAULT_SECONDS").map_or(40, |s| s.parse().expect("BENCH_FAULT_SECONDS"));
        Self {
            seconds: var("BENCH_SECONDS").map_or(5, |s| s.parse().expect("BENCH_SECONDS")),
            connections: var("BENCH_CONNECTIONS")
                .map_or(32, |s| s.parse().expect("BENCH_CONNECTIONS")),
            sizes,
            backends,
            admin_url: var("TEST_POSTGRES_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            loopback: sections.contains("loopback"),
            distance: sections.contains("distance"),
            pools: var("BENCH_POOLS").is_none_or(|v| v != "0"),
            faults: fault_seconds > 0,
            fault_seconds,
            rtt: Duration::from_secs_f64(
                var("BENCH_RTT_MS").map_or(1.0, |s| s.parse::<f64>().expect("BENCH_RTT_MS")) / 1e3,
            ),
            before: var("BENCH_BEFORE").map(|path| Binary {
                label: format!("earlier build {path}"),
                path,
            }),
        }
    }
}

pub fn label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// The performance issues' targets, from this run's figures.
fn targets(runs: &[Run], distance: Option<&DistanceRun>) {
    println!("\n== Targets");
    let find = |backend: Backend, restaurants: i64| {
        runs.iter()
            .find(|run| run.backend == backend && run.size.restaurants == restaurants)
    };
    if let Some(small) = find(Backend::Postgres, 100) {
        for route in [
            "/ first page",
            "/ last page",
            "/<id>/ first page",
            "/<id>/ last page",
        ] {
            if let Some((load, Some(floor))) = small.load(route) {
                let ratio = load.per_second / floor.per_second;
                println!(
                    "  postgres 100×20 {route:<18} {:>5.1}% of its pgbench floor (target ≥ 50%): {}",
                    100.0 * ratio,
                    verdict(ratio >= 0.5)
                );
            }
        }
        if let (Some((health, Some(select_1))), Some((ceiling, _))) =
            (small.load("/health"), small.load("static (ceiling)"))
        {
            let lower = select_1.per_second.min(ceiling.per_second);
            let ratio = health.per_second / lower;
            println!(
                "  postgres 100×20 /health            {:>5.1}% of the lower of pgbench SELECT 1 and the static route (target ≥ 50%): {}",
                100.0 * ratio,
                verdict(ratio >= 0.5)
            );
        }
    }
    for backend in [Backend::Sqlite, Backend::Postgres] {
        if let Some(run) = find(backend, 10_000)
            && let (Some((page_500, _)), Some((first, _))) =
                (run.load("/?page=500"), run.load("/ first page"))
        {
            let slower = first.per_second / page_500.per_second;
            println!(
                "  {} 10,000×100 /?page=500 {slower:>4.2}× the time of / (target ≤ 1.3×): {}",
                label(backend),
                verdict(slower <= 1.3)
            );
        }
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
    if let Some(distance) = distance {
        let rtt_ms = distance.rtt.as_secs_f64() * 1e3;
        let bound = distance.rtt + Duration::from_millis(2);
        for (route, single, full, floor) in &distance.rows {
            if *route != "/health" {
                println!(
                    "  postgres {rtt_ms} ms away, {route:<18} one connection p50 {} (target ≤ 1 RTT + 2 ms = {}): {}",
                    ms(single.p50),
                    ms(bound),
                    verdict(single.p50 <= bound)
                );
            }
            let ratio = full.per_second / floor.per_second;
            println!(
                "  postgres {rtt_ms} ms away, {route:<18} full concurrency {:>5.1}% of pgbench over the same link (target ≥ 80%): {}",
                100.0 * ratio,
                verdict(ratio >= 0.8)
            );
        }
        if let Some(faults) = &distance.faults {
            println!(
                "  connections cut every 10 s and a restart: {} of {} requests failed outside the restart (target 0): {}",
                faults.failed_outside,
                faults.requests,
                verdict(faults.failed_outside == 0)
            );
        }
    }
    println!("  (photo targets: printed by `cargo bench --bench photos`)");
}

/// This build beside the earlier one (`BENCH_BEFORE`), and the pool sizes side by side.
fn comparisons(runs: &[Run], distance: Option<&DistanceRun>) {
    let ratio = |after: f64, before: f64| format!("{:>5.2}×", after / before);
    for run in runs.iter().filter(|run| !run.before.is_empty()) {
        println!(
            "\n== {} {}: this build against the earlier one (req/s)",
            label(run.backend),
            run.size.label()
        );
        for (route, before) in &run.before {
            if let Some((after, _)) = run.load(route) {
                println!(
                    "  {route:<22} {:>9.0} vs {:>9.0}  {}  p99 {} vs {}",
                    after.per_second,
                    before.per_second,
                    ratio(after.per_second, before.per_second),
                    ms(after.p99),
                    ms(before.p99)
                );
            }
        }
    }
    if let Some(distance) = distance {
        println!(
            "\n== PostgreSQL {} ms away (pgbench SELECT 1 round trip p50 {})",
            distance.rtt.as_secs_f64() * 1e3,
            ms(distance.measured_rtt)
        );
        for (route, single, full, _) in &distance.rows {
            let before = distance.before.iter().find(|(r, ..)| r == route);
            match before {
                Some((_, before_single, before_full)) => println!(
                    "  {route:<18} one connection p50 {} vs {} earlier; full concurrency {:>7.0} vs {:>7.0} req/s ({})",
                    ms(single.p50),
                    ms(before_single.p50),
                    full.per_second,
                    before_full.per_second,
                    ratio(full.per_second, before_full.per_second)
                ),
                None => println!(
                    "  {route:<18} one connection p50 {}; full concurrency {:>7.0} req/s",
                    ms(single.p50),
                    full.per_second
                ),
            }
        }
        if let (Some(after), Some(before)) = (&distance.faults, &distance.faults_before) {
            println!(
                "  cuts and a restart: failed outside the restart {} of {} vs {} of {} earlier",
                after.failed_outside, after.requests, before.failed_outside, before.requests
            );
        }
        let loopback_pools = runs
            .iter()
            .find(|run| !run.pools.is_empty())
            .map(|run| &run.pools);
        if !distance.pools.is_empty() {
            println!(
                "\n== Pool size (DB_POOL_SIZE): GET / req/s and p99, loopback and at a distance"
            );
            for (size, far) in &distance.pools {
                let near = loopback_pools
                    .and_then(|pools| pools.iter().find(|(s, _)| s == size))
                    .map(|(_, load)| format!("{:>7.0} req/s p99 {}", load.per_second, ms(load.p99)))
                    .unwrap_or_default();
                println!(
                    "  pool {size:>3}: loopback {near:<28} {} ms away {:>7.0} req/s p99 {}",
                    distance.rtt.as_secs_f64() * 1e3,
                    far.per_second,
                    ms(far.p99)
                );
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut settings = Settings::from_env();
    // `cargo test --all-targets` (the suite) runs this binary too, without `--bench`: then a
    // smoke run, one small size with one-second loads and a short fault run, checks that the
    // benchmark still works without spending the suite's time (the full run takes 25 minutes).
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
            settings.distance = false;
        }
        println!(
            "smoke run under cargo test (the figures of a debug build mean nothing): `bash scripts/bench.sh` runs the benchmark"
        );
        settings.sizes = vec![Size {
            restaurants: 100,
            reviews_each: 20,
        }];
        settings.seconds = 1;
        settings.pools = false;
        settings.fault_seconds = 12;
    }
    println!(
        "wrk -t2 -c{} -d{}s per route; floors at the same concurrency; {} cores",
        settings.connections,
        settings.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut runs = Vec::new();
    if settings.loopback {
        for &backend in &settings.backends {
            for &size in &settings.sizes {
                if let Some(run) = loopback::bench_one(backend, size, &settings).await {
                    runs.push(run);
                }
            }
        }
    }
    let distance = if settings.distance && settings.backends.contains(&Backend::Postgres) {
        distance::run(&settings).await
    } else {
        None
    };
    comparisons(&runs, distance.as_ref());
    targets(&runs, distance.as_ref());
}
