//! Connections cut under load: browsers load pages as fast as they are answered while every
//! session of the app is ended every 10 s (`pg_terminate_backend`, idle or busy, as a failover
//! does) and the server is restarted once. Counted: requests that failed outside the seconds
//! the server was really down (the target: none), and those during.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::cluster::Cluster;

const BROWSERS: usize = 8;
const CUT_EVERY: Duration = Duration::from_secs(10);

pub struct FaultRun {
    pub requests: usize,
    pub failed_outside: usize,
    pub failed_during: usize,
    pub sessions_ended: i64,
    pub down: Duration,
    pub examples: Vec<String>,
}

struct Request {
    started: Instant,
    ended: Instant,
    ok: bool,
    what: String,
}

/// `paths` loaded from `base` for `seconds`, with the cuts and one restart of `cluster` halfway.
pub async fn run(base: &str, paths: &[String], cluster: &Cluster, seconds: u64) -> FaultRun {
    let log: Arc<Mutex<Vec<Request>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let browsers: Vec<_> = (0..BROWSERS)
        .map(|n| {
            let (log, stop, base) = (log.clone(), stop.clone(), base.to_owned());
            let paths = paths.to_vec();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut i = n;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let path = &paths[i % paths.len()];
                    let started = Instant::now();
                    let (ok, what) = match client.get(format!("{base}{path}")).send().await {
                        Ok(response) => {
                            let status = response.status();
                            let _ = response.bytes().await;
                            (status.is_success(), format!("{path}: {status}"))
                        }
                        Err(error) => (false, format!("{path}: {error}")),
                    };
                    let ended = Instant::now();
                    log.lock().unwrap().push(Request {
                        started,
                        ended,
                        ok,
                        what,
                    });
                    if !ok {
                        // A browser does not hammer a failing site.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    let began = Instant::now();
    let total = Duration::from_secs(seconds);
    let restart_at = total / 2 + CUT_EVERY / 2;
    let mut down = None;
    let mut sessions_ended = 0;
    let mut next_cut = CUT_EVERY;
    while began.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if down.is_none() && began.elapsed() >= restart_at {
            let from = Instant::now();
            // pg_ctl waits until the server accepts connections again.
            tokio::task::block_in_place(|| cluster.restart());
            down = Some((from, Instant::now()));
        }
        if began.elapsed() >= next_cut {
            next_cut += CUT_EVERY;
            sessions_ended += end_sessions(cluster).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for browser in browsers {
        browser.await.unwrap();
    }
    let (down_from, up_at) = down.unwrap_or((began, began));
    let requests = std::mem::take(&mut *log.lock().unwrap());
    let during = |r: &Request| r.ended >= down_from && r.started <= up_at;
    let failed_outside: Vec<&Request> = requests.iter().filter(|r| !r.ok && !during(r)).collect();
    FaultRun {
        requests: requests.len(),
        failed_outside: failed_outside.len(),
        failed_during: requests.iter().filter(|r| !r.ok && during(r)).count(),
        sessions_ended,
        down: up_at.duration_since(down_from),
        examples: failed_outside
            .iter()
            .take(3)
            .map(|r| {
                format!(
                    "{} at {:.1} s",
                    r.what,
                    r.started.duration_since(began).as_secs_f64()
                )
            })
            .collect(),
    }
}

/// Ends every session the app has open, busy or idle.
async fn end_sessions(cluster: &Cluster) -> i64 {
    let Ok(mut admin) = sqlx::PgConnection::connect(&cluster.url("postgres")).await else {
        return 0;
    };
    let ended: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'restaurant-review' AND pid <> pg_backend_pid()) AS ended",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap_or(0);
    let _ = admin.close().await;
    ended
}
