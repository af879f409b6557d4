//! Dropped PostgreSQL connections under load: the real binary, configured as on App Service
//! (token sign-in with 60-second tokens, so connections opened after a cut use a rotated
//! token), serves three browsers (the list, a restaurant, a review) while the app's idle
//! sessions are ended every two seconds (`pg_terminate_backend`: what a failover, a
//! maintenance restart or an idle cut in the network looks like), and PostgreSQL is restarted
//! once. No request may fail outside the seconds the server is really down, and every review
//! the user was told was saved is stored exactly once.
//!
//! `RESTAURANT_REVIEW_BINARY=<path>` runs another build under the same load (to measure an
//! earlier release); `--nocapture` prints the summary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::Form;

use crate::helpers::azure_rig::{AzureRig, ROLE, totals_from_rows};
use crate::helpers::extract_csrf;
use crate::helpers::process::{add_restaurant, browser};

const LOAD: Duration = Duration::from_secs(40);
const CUT_EVERY: Duration = Duration::from_secs(2);
const RESTART_AT: Duration = Duration::from_secs(22);
const BROWSERS: usize = 3;

/// One request as a browser saw it.
struct Seen {
    route: &'static str,
    started: Instant,
    ended: Instant,
    ok: bool,
    what: String,
}

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    /// Reviews answered 303, by their unique text.
    saved: Mutex<Vec<String>>,
}

impl Log {
    fn record(&self, route: &'static str, started: Instant, ok: bool, what: String) {
        self.seen.lock().unwrap().push(Seen {
            route,
            started,
            ended: Instant::now(),
            ok,
            what,
        });
    }
}

async fn browse(
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
    base: String,
    restaurants: Vec<i64>,
    n: usize,
) {
    let client = browser();
    let mut round = 0usize;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        let restaurant = restaurants[round % restaurants.len()];
        let started = Instant::now();
        let index = client.get(format!("{base}/")).send().await;
        let status = index.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
        log.record("GET /", started, status == 200, format!("{status}"));

        let started = Instant::now();
        let page = match client.get(format!("{base}/{restaurant}/")).send().await {
            Ok(response) if response.status() == StatusCode::OK => {
                let body = response.text().await.unwrap_or_default();
                log.record("GET /{id}/", started, true, "200".into());
                body
            }
            Ok(response) => {
                let status = response.status().as_u16();
                log.record("GET /{id}/", started, false, format!("{status}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(error) => {
                log.record("GET /{id}/", started, false, error.to_string());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(token) = extract_csrf(&page) else {
            continue;
        };
        let marker = format!("cut-b{n}-r{round}");
        let form = Form::new()
            .text("csrfmiddlewaretoken", token)
            .text("user_name", format!("Cutter {n}"))
            .text("rating", (round % 5 + 1).to_string())
            .text("review_text", marker.clone());
        let started = Instant::now();
        match client
            .post(format!("{base}/review/{restaurant}"))
            .multipart(form)
            .send()
            .await
        {
            Ok(response) if response.status() == StatusCode::SEE_OTHER => {
                log.saved.lock().unwrap().push(marker);
                log.record("POST /review/{id}", started, true, "303".into());
            }
            Ok(response) => {
                let status = response.status().as_u16();
                log.record("POST /review/{id}", started, false, format!("{status}"));
            }
            Err(error) => log.record("POST /review/{id}", started, false, error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ends the app's idle sessions, as a failover or an idle cut would; how many it ended.
async fn cut_idle_sessions(rig: &AzureRig) -> i64 {
    let mut admin = rig.cluster.admin().await;
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE usename = $1 AND state = 'idle') AS ended",
    )
    .bind(ROLE)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ended_under_load_cost_no_request_outside_a_restart() {
    let Some(rig) = AzureRig::start(Duration::from_secs(60)).await else {
        return;
    };
    let mut app = rig.start_app();
    assert!(app.wait_healthy().await, "{}", app.output());
    let client = browser();
    let mut restaurants = Vec::new();
    for name in ["Cut One", "Cut Two", "Cut Three"] {
        let response = add_restaurant(&client, &app, name).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap();
        restaurants.push(location.trim_matches('/').parse::<i64>().unwrap());
    }

    let log = Arc::new(Log::default());
    let stop = Arc::new(AtomicBool::new(false));
    let browsers: Vec<_> = (0..BROWSERS)
        .map(|n| {
            tokio::spawn(browse(
                log.clone(),
                stop.clone(),
                app.base_url.clone(),
                restaurants.clone(),
                n,
            ))
        })
        .collect();
    let began = Instant::now();
    let (mut cuts, mut ended) = (0, 0);
    let mut down: Option<(Instant, Instant)> = None;
    while began.elapsed() < LOAD {
        tokio::time::sleep(CUT_EVERY).await;
        if down.is_none() && began.elapsed() >= RESTART_AT {
            let from = Instant::now();
            rig.cluster.restart();
            down = Some((from, Instant::now()));
            continue;
        }
        cuts += 1;
        ended += cut_idle_sessions(&rig).await;
    }
    stop.store(true, Ordering::SeqCst);
    for browser in browsers {
        browser.await.unwrap();
    }

    let (down_from, up_at) = down.expect("PostgreSQL was restarted");
    let seen = std::mem::take(&mut *log.seen.lock().unwrap());
    let mut by_route: HashMap<&str, (usize, usize)> = HashMap::new();
    for request in &seen {
        let entry = by_route.entry(request.route).or_default();
        entry.0 += 1;
        entry.1 += usize::from(!request.ok);
    }
    // A request overlapping the restart may fail; it lasts until the server accepts again.
    let during_restart = |request: &Seen| request.ended >= down_from && request.started <= up_at;
    let failed_outside: Vec<String> = seen
        .iter()
        .filter(|request| !request.ok && !during_restart(request))
        .map(|request| {
            format!(
                "{} at {:.1} s: {}",
                request.route,
                request.started.duration_since(began).as_secs_f64(),
                request.what
            )
        })
        .collect();
    let failed_during = seen
        .iter()
        .filter(|request| !request.ok && during_restart(request))
        .count();
    println!(
        "{} requests in {:.0} s; {cuts} cuts ended {ended} idle sessions; PostgreSQL down {:.1} s at {:.1} s ({failed_during} requests failed meanwhile)",
        seen.len(),
        LOAD.as_secs_f64(),
        up_at.duration_since(down_from).as_secs_f64(),
        down_from.duration_since(began).as_secs_f64()
    );
    let mut routes: Vec<_> = by_route.into_iter().collect();
    routes.sort();
    for (route, (total, failed)) in routes {
        println!("  {route:<18} {total:>5} requests, {failed} failed");
    }
    assert!(ended > 0, "the cuts ended no session");
    assert!(
        failed_outside.is_empty(),
        "{} requests failed outside the restart:\n{}",
        failed_outside.len(),
        failed_outside.join("\n")
    );

    // Every review answered 303 is stored exactly once, and the totals follow the rows.
    let rows = rig.reviews().await;
    let saved = log.saved.lock().unwrap().clone();
    for marker in &saved {
        let stored = rows.iter().filter(|row| &row.text == marker).count();
        assert_eq!(stored, 1, "review {marker} is stored {stored} times");
    }
    assert_eq!(
        rig.stored_totals().await,
        totals_from_rows(restaurants.iter().copied(), &rows)
    );
    assert!(app.output().lines().all(|line| !line.contains("panicked")));
}
