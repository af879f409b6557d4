//! Faults during load: the real binary, configured as on App Service (PostgreSQL in token mode
//! with 60-second tokens, Azurite with OAuth, the fake identity endpoint), serves a few browsers'
//! mixed traffic (`GET /`, `GET /<id>/`, text reviews, about 5% with a photo) while, in turn:
//!
//! 1. PostgreSQL is restarted (`pg_ctl restart -m fast`);
//! 2. every PostgreSQL session of the app's role is ended (`pg_terminate_backend`);
//! 3. the identity endpoint answers 500 to the app's refresh of its 60-second tokens;
//! 4. it answers 429 with `Retry-After: 20` to the app's retries of that refresh;
//! 5. Azurite is stopped for 20 s;
//! 6. the identity endpoint hangs for 30 s at the next refresh (accepts, does not answer until
//!    it comes back).
//!
//! A short normal phase separates the faults. The identity faults are placed on the app's own
//! refresh points (read from `/health`), so each one meets a real token request: with
//! 60-second tokens a refresh happens 48 s after a token is minted (12 s before it expires) and
//! a failed one is retried halfway to expiry, so the app usually rides out a short fault on the
//! token it has. That clock also sets the length: the default run is about 2.5 minutes plus
//! setup, inside the 3 minutes CI allows.
//!
//! Afterwards, asserted: every 303 left exactly one review row (each review carries a unique
//! marker); no review the user was told was not saved exists; every row's photo is in the
//! container (both renditions) and every blob belongs to a row; the restaurants' stored
//! `review_count`/`rating_sum` equal the rows; every failure a user saw was a clean 503 page (for
//! a review, with what they typed kept in the form); after each fault the app served normally
//! again within [`RECOVERY_BOUND`] by itself. The summary (requests by route and outcome,
//! failures by kind, recovery per fault, invariants) is printed and written to
//! `target/tmp/soak-summary.txt`:
//!
//! ```text
//! cargo test --test api soak -- --nocapture
//! SOAK_SECONDS=1800 cargo test --test api soak -- --nocapture   # the long variant
//! ```
//!
//! The long variant repeats the fault cycle until `SOAK_SECONDS` have passed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::Form;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::azure_rig::{AzureRig, ROLE, totals_from_rows};
use crate::helpers::fake_identity::{Answer, Mode};
use crate::helpers::process::{AppProcess, add_restaurant, browser};
use crate::helpers::{PHONE_PHOTO, extract_csrf, photo_part};

const TOKEN_LIFETIME: Duration = Duration::from_secs(60);
const CLIENTS: usize = 3;
/// One review in twenty carries a photo.
const PHOTO_EVERY: u32 = 20;
/// The app must serve normally again this long after a fault ends: a token fetch that hung runs
/// into its 30 s timeout, then a 10 s backoff, one fetch, and slack for a loaded machine.
const RECOVERY_BOUND: Duration = Duration::from_secs(45);
const AZURITE_OUTAGE: Duration = Duration::from_secs(20);
const HANG: Duration = Duration::from_secs(30);
const RETRY_AFTER_SECS: u64 = 20;
const NORMAL: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Route {
    Index,
    Details,
    TextReview,
    PhotoReview,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Index => "GET /",
            Route::Details => "GET /<id>/",
            Route::TextReview => "POST /review/<id> (text)",
            Route::PhotoReview => "POST /review/<id> (photo)",
        }
    }

    fn is_post(self) -> bool {
        matches!(self, Route::TextReview | Route::PhotoReview)
    }
}

/// What the user saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Seen {
    /// 200 for a page, 303 for a review.
    Served,
    /// 503, the review form shown again with what was typed.
    Unavailable503FormKept,
    /// 503, the friendly "Temporarily unavailable" page (for a review: what was typed is lost).
    Unavailable503,
    /// Any other status, or a 503 that is not one of the app's pages.
    OtherStatus(u16),
    /// No HTTP answer: connection refused or reset, or the client's 45 s timeout.
    NoAnswer,
}

impl Seen {
    fn label(self) -> String {
        match self {
            Seen::Served => "served (200/303)".into(),
            Seen::Unavailable503FormKept => "503, form kept".into(),
            Seen::Unavailable503 => "503 page".into(),
            Seen::OtherStatus(status) => format!("{status}"),
            Seen::NoAnswer => "no answer".into(),
        }
    }

    /// A failure the user may see: a clean 503 page, with the form kept for a review.
    fn is_clean_for(self, route: Route) -> bool {
        match self {
            Seen::Served | Seen::Unavailable503FormKept => true,
            Seen::Unavailable503 => !route.is_post(),
            Seen::OtherStatus(_) | Seen::NoAnswer => false,
        }
    }
}

struct Record {
    at: Duration,
    route: Route,
    seen: Seen,
    /// The review's unique text, for posts.
    marker: Option<String>,
}

struct Traffic {
    start: Instant,
    records: Mutex<Vec<Record>>,
    stop: AtomicBool,
}

impl Traffic {
    fn record(&self, route: Route, seen: Seen, marker: Option<String>) {
        self.records.lock().unwrap().push(Record {
            at: self.start.elapsed(),
            route,
            seen,
            marker,
        });
    }
}

/// A fault as it happened, in seconds since the traffic started.
struct Phase {
    name: &'static str,
    start: Duration,
    end: Duration,
}

/// A page load: 200, the app's 503 page, or an unclean failure.
async fn load(client: &reqwest::Client, url: &str) -> (Seen, Option<String>) {
    match client.get(url).send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let seen = match status {
                StatusCode::OK => Seen::Served,
                StatusCode::SERVICE_UNAVAILABLE if body.contains("Temporarily unavailable") => {
                    Seen::Unavailable503
                }
                other => Seen::OtherStatus(other.as_u16()),
            };
            (seen, Some(body))
        }
        Err(_) => (Seen::NoAnswer, None),
    }
}

/// One browser: the list, a restaurant's page, a review (sometimes with a photo), again.
async fn browse(
    traffic: Arc<Traffic>,
    base: String,
    restaurants: Vec<i64>,
    client_no: usize,
) -> usize {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(45))
        .build()
        .unwrap();
    let mut csrf = None;
    let mut n = 0usize;
    while !traffic.stop.load(Ordering::SeqCst) {
        n += 1;
        let restaurant = restaurants[n % restaurants.len()];
        let (seen, _) = load(&client, &format!("{base}/")).await;
        traffic.record(Route::Index, seen, None);
        let (seen, page) = load(&client, &format!("{base}/{restaurant}/")).await;
        traffic.record(Route::Details, seen, None);
        // A browser with the page already open keeps its token when a reload fails.
        if let Some(token) = page.as_deref().and_then(extract_csrf) {
            csrf = Some(token);
        }
        let Some(token) = csrf.clone() else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let marker = format!("soak-c{client_no}-r{n}");
        let user = format!("Soaker {client_no}");
        let rating = (n % 5 + 1).to_string();
        let with_photo = rand::random::<u32>().is_multiple_of(PHOTO_EVERY);
        let mut form = Form::new()
            .text("csrfmiddlewaretoken", token)
            .text("user_name", user.clone())
            .text("rating", rating)
            .text("review_text", marker.clone());
        if with_photo {
            form = form.part(
                "reviewImage",
                photo_part(PHONE_PHOTO, "IMG_0042.JPG", "image/jpeg"),
            );
        }
        let route = if with_photo {
            Route::PhotoReview
        } else {
            Route::TextReview
        };
        let seen = match client
            .post(format!("{base}/review/{restaurant}"))
            .multipart(form)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                match status {
                    StatusCode::SEE_OTHER => Seen::Served,
                    StatusCode::SERVICE_UNAVAILABLE
                        if body.contains(&marker) && body.contains(&user) =>
                    {
                        Seen::Unavailable503FormKept
                    }
                    StatusCode::SERVICE_UNAVAILABLE if body.contains("Temporarily unavailable") => {
                        Seen::Unavailable503
                    }
                    other => Seen::OtherStatus(other.as_u16()),
                }
            }
            Err(_) => Seen::NoAnswer,
        };
        traffic.record(route, seen, Some(marker));
        tokio::time::sleep(Duration::from_millis(50 + u64::from(rand::random::<u8>()))).await;
    }
    n
}

/// The soonest refresh point of the app's token sources, from `/health` (which answers 503 with
/// the same body while the database is down).
async fn next_refresh(client: &reqwest::Client, app: &AppProcess) -> Option<OffsetDateTime> {
    let health: serde_json::Value = client
        .get(app.url("/health"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    health["tokens"]
        .as_array()?
        .iter()
        .filter_map(|t| t["next_refresh"].as_str())
        .filter_map(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .min()
}

/// Sleeps until `lead` before the app's next token refresh.
async fn until_before_refresh(client: &reqwest::Client, app: &AppProcess, lead: Duration) {
    let refresh = next_refresh(client, app)
        .await
        .expect("/health shows when the tokens are refreshed");
    let wait: Duration = (refresh - OffsetDateTime::now_utc() - lead)
        .try_into()
        .unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

struct Soak<'a> {
    rig: &'a mut AzureRig,
    app: &'a AppProcess,
    traffic: &'a Traffic,
    health: reqwest::Client,
    phases: Vec<Phase>,
    notes: Vec<String>,
    /// What went wrong in the fault machinery itself (a fault that met no token request...).
    problems: Vec<String>,
    retry_after_check: Option<(Instant, Duration)>,
}

impl Soak<'_> {
    fn now(&self) -> Duration {
        self.traffic.start.elapsed()
    }

    async fn normal(&self, how_long: Duration) {
        tokio::time::sleep(how_long).await;
    }

    fn ended(&mut self, name: &'static str, start: Duration) {
        let end = self.now();
        self.phases.push(Phase { name, start, end });
    }

    async fn restart_postgres(&mut self) {
        let start = self.now();
        tokio::task::block_in_place(|| self.rig.cluster.restart());
        self.ended("PostgreSQL restarted", start);
    }

    async fn end_sessions(&mut self) {
        let start = self.now();
        let ended = self.rig.cluster.terminate_sessions(ROLE).await;
        self.notes
            .push(format!("sessions ended by pg_terminate_backend: {ended}"));
        self.ended("every PostgreSQL session killed", start);
    }

    async fn storage_outage(&mut self) {
        let start = self.now();
        tokio::task::block_in_place(|| self.rig.azurite.stop());
        tokio::time::sleep(AZURITE_OUTAGE).await;
        self.rig.azurite.resume().await;
        self.ended("Azurite stopped 20 s", start);
    }

    /// The identity endpoint fails with `mode` from just before the app's next refresh until
    /// each token source has been refused once (or 15 s pass).
    /// Refuses the app's next token requests with `status`: those of its next refresh point,
    /// or (`now`) whatever comes next, such as the retries of a refusal just before.
    async fn identity_refuses(&mut self, name: &'static str, mode: Mode, status: u16, now: bool) {
        if !now {
            until_before_refresh(&self.health, self.app, Duration::from_secs(3)).await;
        }
        let start = self.now();
        let set_at = Instant::now();
        self.rig.identity.set_mode(mode);
        let refused = || {
            self.rig
                .identity
                .calls()
                .iter()
                .filter(|c| c.received >= set_at && c.answer == Answer::Status(status))
                .count()
        };
        while refused() < 2 && set_at.elapsed() < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.rig.identity.set_mode(Mode::Normal);
        let calls = refused();
        if calls == 0 {
            self.problems
                .push(format!("{name}: the app made no token request to refuse"));
        }
        self.notes
            .push(format!("{name}: {calls} token requests refused"));
        if let Mode::Fail429 { retry_after } = mode {
            self.check_retry_after(set_at, retry_after);
        }
        self.ended(name, start);
    }

    /// After a 429 for a scope, the next request for that scope came no sooner than
    /// `Retry-After` said (recorded now, asserted at the end; the retry comes later).
    fn check_retry_after(&mut self, set_at: Instant, retry_after: u64) {
        self.retry_after_check = Some((set_at, Duration::from_secs(retry_after)));
    }

    fn retry_after_verdict(&mut self) {
        let Some((set_at, retry_after)) = self.retry_after_check.take() else {
            return;
        };
        let calls = self.rig.identity.calls();
        for throttled in calls
            .iter()
            .filter(|c| c.received >= set_at && c.answer == Answer::Status(429))
        {
            let next = calls
                .iter()
                .filter(|c| c.resource == throttled.resource && c.received > throttled.answered_at)
                .map(|c| c.received - throttled.answered_at)
                .min();
            match next {
                Some(after) if after < retry_after => self.problems.push(format!(
                    "{}: asked again {:.1} s after a 429 with Retry-After {} s",
                    throttled.resource,
                    after.as_secs_f64(),
                    retry_after.as_secs()
                )),
                Some(after) => self.notes.push(format!(
                    "{}: next token request {:.1} s after the 429 (Retry-After {} s)",
                    throttled.resource,
                    after.as_secs_f64(),
                    retry_after.as_secs()
                )),
                None => self.problems.push(format!(
                    "{}: never asked again after the 429",
                    throttled.resource
                )),
            }
        }
    }

    /// The endpoint accepts requests and answers none for 30 s; held requests are answered
    /// when it comes back.
    async fn identity_hangs(&mut self) {
        until_before_refresh(&self.health, self.app, Duration::from_secs(3)).await;
        let start = self.now();
        let set_at = Instant::now();
        self.rig.identity.set_mode(Mode::Hang);
        tokio::time::sleep(HANG).await;
        self.rig.identity.set_mode(Mode::Normal);
        let back = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held: Vec<Duration> = self
            .rig
            .identity
            .calls()
            .iter()
            .filter(|c| c.received >= set_at && c.received < back)
            .map(|c| c.answered_at - c.received)
            .collect();
        match held.iter().max() {
            None => self
                .problems
                .push("the hang met no token request; its timing is off".into()),
            Some(longest) => self.notes.push(format!(
                "identity hang 30 s: {} token requests held, longest {:.1} s",
                held.len(),
                longest.as_secs_f64()
            )),
        }
        self.ended("identity hang 30 s", start);
    }

    /// One fault cycle; the identity faults sit on the app's refresh points.
    async fn cycle(&mut self) {
        self.normal(NORMAL).await;
        self.restart_postgres().await;
        self.normal(NORMAL).await;
        self.end_sessions().await;
        self.normal(NORMAL).await;
        self.identity_refuses("identity 500", Mode::Fail500, 500, false)
            .await;
        // Straight on: the app's retries of the refused refresh (halfway to expiry) meet it.
        self.identity_refuses(
            "identity 429 + Retry-After",
            Mode::Fail429 {
                retry_after: RETRY_AFTER_SECS,
            },
            429,
            true,
        )
        .await;
        // Let the app come back from the throttling (Retry-After) before the next fault, so
        // each fault's recovery is its own.
        self.until_tokens_fresh().await;
        self.normal(Duration::from_secs(2)).await;
        self.storage_outage().await;
        self.normal(Duration::from_secs(3)).await;
        self.identity_hangs().await;
        // Until the app has its tokens again, then a little steady traffic.
        self.until_tokens_fresh().await;
        self.normal(Duration::from_secs(3)).await;
        self.retry_after_verdict();
    }

    /// Waits (at most [`RECOVERY_BOUND`]) until every token is valid and without error.
    async fn until_tokens_fresh(&self) {
        let deadline = Instant::now() + RECOVERY_BOUND;
        while Instant::now() < deadline && !self.tokens_fresh().await {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn tokens_fresh(&self) -> bool {
        let Ok(response) = self.health.get(self.app.url("/health")).send().await else {
            return false;
        };
        let Ok(health) = response.json::<serde_json::Value>().await else {
            return false;
        };
        health["tokens"].as_array().is_some_and(|tokens| {
            tokens.iter().all(|t| {
                t["last_error"].is_null()
                    && t["valid_until"]
                        .as_str()
                        .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok())
                        .is_some_and(|v| v > OffsetDateTime::now_utc() + Duration::from_secs(10))
            })
        })
    }
}

/// A log line without its ANSI colour codes.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Recovery after each phase: the last failure between its start and the next phase's start,
/// measured from its end. `None` when failures ran into the next phase.
fn recoveries(phases: &[Phase], records: &[Record], run_end: Duration) -> Vec<Option<Duration>> {
    phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let until = phases.get(i + 1).map_or(run_end, |next| next.start);
            let last_failure = records
                .iter()
                .filter(|r| r.at >= phase.start && r.at < until && r.seen != Seen::Served)
                .map(|r| r.at)
                .max();
            match last_failure {
                None => Some(Duration::ZERO),
                Some(at) if until - at < Duration::from_secs(1) && i + 1 < phases.len() => None,
                Some(at) => Some(at.saturating_sub(phase.end)),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_survives_every_fault_in_turn_and_every_invariant_holds() {
    let began = Instant::now();
    let Some(mut rig) = AzureRig::start(TOKEN_LIFETIME).await else {
        return;
    };
    let soak_seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .map(|s| s.parse().expect("SOAK_SECONDS is a number of seconds"))
        .unwrap_or(0);
    let mut app = rig.start_app();
    assert!(app.wait_healthy().await, "{}", app.output());
    let setup_client = browser();
    let mut restaurants = Vec::new();
    for name in ["Soak Bistro", "Soak Diner", "Soak Grill"] {
        let response = add_restaurant(&setup_client, &app, name).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap();
        restaurants.push(location.trim_matches('/').parse::<i64>().unwrap());
    }
    let setup = began.elapsed();

    let traffic = Arc::new(Traffic {
        start: Instant::now(),
        records: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(browse(
                traffic.clone(),
                app.base_url.clone(),
                restaurants.clone(),
                c,
            ))
        })
        .collect();
    let mut soak = Soak {
        rig: &mut rig,
        app: &app,
        traffic: &traffic,
        health: reqwest::Client::new(),
        phases: Vec::new(),
        notes: Vec::new(),
        problems: Vec::new(),
        retry_after_check: None,
    };
    let mut cycles = 0;
    loop {
        soak.cycle().await;
        cycles += 1;
        if soak.now() >= Duration::from_secs(soak_seconds) {
            break;
        }
    }
    let (phases, notes, problems) = (
        std::mem::take(&mut soak.phases),
        soak.notes.clone(),
        soak.problems.clone(),
    );
    traffic.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let run_end = traffic.start.elapsed();
    let records = std::mem::take(&mut *traffic.records.lock().unwrap());

    // The invariants, from the database and the container as they are now.
    let rows = rig.reviews().await;
    let blobs = rig.blobs().await;
    let stored_totals = rig.stored_totals().await;
    let mut rows_by_text: HashMap<&str, usize> = HashMap::new();
    for row in &rows {
        *rows_by_text.entry(row.text.as_str()).or_default() += 1;
    }
    let posts: Vec<&Record> = records.iter().filter(|r| r.marker.is_some()).collect();
    let rows_for = |r: &Record| rows_by_text.get(r.marker.as_deref().unwrap()).copied();
    let created_not_one: Vec<String> = posts
        .iter()
        .filter(|r| r.seen == Seen::Served && rows_for(r) != Some(1))
        .map(|r| format!("{} -> {:?} rows", r.marker.as_deref().unwrap(), rows_for(r)))
        .collect();
    let refused_but_saved: Vec<String> = posts
        .iter()
        .filter(|r| r.seen != Seen::Served && rows_for(r).is_some())
        .map(|r| format!("{} ({})", r.marker.as_deref().unwrap(), r.seen.label()))
        .collect();
    let sent: std::collections::HashSet<&str> =
        posts.iter().filter_map(|r| r.marker.as_deref()).collect();
    let unknown_rows = rows
        .iter()
        .filter(|r| !sent.contains(r.text.as_str()))
        .count();
    let image_names: std::collections::HashSet<&str> = rows
        .iter()
        .filter_map(|r| r.image_name.as_deref())
        .collect();
    let missing_photos: Vec<&str> = image_names
        .iter()
        .copied()
        .filter(|name| {
            !blobs.iter().any(|b| b == name)
                || !blobs.iter().any(|b| *b == format!("thumbs/{name}"))
        })
        .collect();
    let orphan_blobs: Vec<&String> = blobs
        .iter()
        .filter(|b| !image_names.contains(b.strip_prefix("thumbs/").unwrap_or(b)))
        .collect();
    let totals = totals_from_rows(stored_totals.keys().copied(), &rows);
    let totals_ok = totals == stored_totals;
    let unclean: Vec<String> = records
        .iter()
        .filter(|r| !r.seen.is_clean_for(r.route))
        .map(|r| {
            format!(
                "{:.1} s {} {}",
                r.at.as_secs_f64(),
                r.route.label(),
                r.seen.label()
            )
        })
        .collect();
    let recovery = recoveries(&phases, &records, run_end);

    // The summary.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "soak: {cycles} fault cycle(s), {:.0} s of traffic from {CLIENTS} browsers, setup {:.1} s, wall time {:.0} s",
        run_end.as_secs_f64(),
        setup.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    let mut by_route: BTreeMap<(Route, Seen), usize> = BTreeMap::new();
    for r in &records {
        *by_route.entry((r.route, r.seen)).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "\nrequests by route and outcome ({} in all):",
        records.len()
    );
    for ((route, seen), n) in &by_route {
        let _ = writeln!(out, "  {:<28} {:<18} {n:>6}", route.label(), seen.label());
    }
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r.seen != Seen::Served) {
        let kind = match (r.route.is_post(), r.seen) {
            (true, Seen::Unavailable503) => "review: 503 page, form lost".to_owned(),
            (true, seen) => format!("review: {}", seen.label()),
            (false, seen) => format!("page: {}", seen.label()),
        };
        *by_kind.entry(kind).or_default() += 1;
    }
    let failures: usize = by_kind.values().sum();
    let _ = writeln!(out, "\nfailures users saw by kind ({failures} in all):");
    for (kind, n) in &by_kind {
        let _ = writeln!(out, "  {kind:<34} {n:>6}");
    }
    let _ = writeln!(out, "\nfaults (seconds since traffic began):");
    for (phase, recovered) in phases.iter().zip(&recovery) {
        let until = phases
            .iter()
            .find(|p| p.start > phase.start)
            .map_or(run_end, |p| p.start);
        let failed = records
            .iter()
            .filter(|r| r.at >= phase.start && r.at < until && r.seen != Seen::Served)
            .count();
        let recovered = match recovered {
            Some(d) => format!("recovered within {:.1} s", d.as_secs_f64()),
            None => "still failing when the next fault began".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {:<32} {:>6.1} .. {:>6.1}  {failed:>4} failures  {recovered}",
            phase.name,
            phase.start.as_secs_f64(),
            phase.end.as_secs_f64()
        );
    }
    for note in &notes {
        let _ = writeln!(out, "  {note}");
    }
    for problem in &problems {
        let _ = writeln!(out, "  PROBLEM: {problem}");
    }
    let _ = writeln!(
        out,
        "  identity endpoint: {} token requests, {} tokens minted",
        rig.identity.requests(),
        rig.identity.minted()
    );
    let verdict = |ok: bool| if ok { "ok" } else { "BROKEN" };
    let served_posts = posts.iter().filter(|r| r.seen == Seen::Served).count();
    let _ = writeln!(out, "\ninvariants:");
    let _ = writeln!(
        out,
        "  every 303 left exactly one row ({served_posts} reviews, {} rows): {}",
        rows.len(),
        verdict(created_not_one.is_empty())
    );
    let _ = writeln!(
        out,
        "  no review saved that the user was told was not: {} ({} of them)",
        verdict(refused_but_saved.is_empty()),
        refused_but_saved.len()
    );
    let _ = writeln!(
        out,
        "  no row without a review sent: {} ({unknown_rows})",
        verdict(unknown_rows == 0)
    );
    let _ = writeln!(
        out,
        "  every row's photo exists ({} photos, {} blobs): {}",
        image_names.len(),
        blobs.len(),
        verdict(missing_photos.is_empty())
    );
    let _ = writeln!(
        out,
        "  no blob without a row: {} ({} orphans)",
        verdict(orphan_blobs.is_empty()),
        orphan_blobs.len()
    );
    let _ = writeln!(
        out,
        "  stored counts and rating sums equal the rows: {} ({totals:?})",
        verdict(totals_ok)
    );
    let _ = writeln!(
        out,
        "  every failure was a clean 503 page (form kept for reviews): {} ({} unclean)",
        verdict(unclean.is_empty()),
        unclean.len()
    );
    let within = recovery.iter().flatten().all(|d| *d <= RECOVERY_BOUND);
    let _ = writeln!(
        out,
        "  recovered by itself within {} s after each fault: {}",
        RECOVERY_BOUND.as_secs(),
        verdict(within)
    );
    // The app's own account of any 500 (its log holds no secrets; checked below).
    let tokens = rig.identity.tokens();
    let server_errors: Vec<String> = app
        .output_lines()
        .into_iter()
        .map(|l| without_colours(&l))
        .filter(|l| l.contains("request failed") && l.contains("status=500"))
        .filter(|l| !tokens.iter().any(|t| l.contains(t.as_str())))
        .collect();
    if !server_errors.is_empty() {
        let _ = writeln!(out, "\n500s in the app's log:");
        for line in &server_errors {
            let _ = writeln!(out, "  {line}");
        }
    }
    println!("{out}");
    let summary = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("soak-summary.txt");
    std::fs::write(&summary, &out).unwrap();
    eprintln!("summary written to {}", summary.display());

    assert!(problems.is_empty(), "{problems:?}");
    assert!(created_not_one.is_empty(), "{created_not_one:?}");
    assert!(refused_but_saved.is_empty(), "{refused_but_saved:?}");
    assert_eq!(unknown_rows, 0);
    assert!(missing_photos.is_empty(), "{missing_photos:?}");
    assert!(orphan_blobs.is_empty(), "{orphan_blobs:?}");
    assert!(totals_ok, "stored {stored_totals:?}, rows say {totals:?}");
    assert!(unclean.is_empty(), "unclean failures: {unclean:#?}");
    assert!(
        within,
        "recovery took longer than {RECOVERY_BOUND:?}:\n{out}"
    );
    assert!(app.wait_healthy().await, "healthy at the end");
    app.sigterm().await;
    let output = app.output();
    for token in rig.identity.tokens() {
        assert!(!output.contains(&token), "a token was logged");
    }
    assert!(!output.contains(rig.identity.header_secret()));
}

/// Found by the soak: a statement in flight when PostgreSQL shuts down (restart, failover,
/// `pg_terminate_backend`) ends with SQLSTATE 57P01, which must read as "unavailable" (503, form
/// kept), not as a failed query (500). A statement inside a transaction is not retried, so the
/// error reaches the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_cut_off_by_a_server_shutdown_counts_as_unavailable() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let victim = {
        let db = app.db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin().await.expect("a transaction");
            tx.fetch_all::<(String,)>("SELECT pg_sleep(30)::text, 'soak-victim'", &[])
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ended,): (i64,) = app
            .db
            .fetch_one(
                "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE '%''soak-victim''%' AND pid <> pg_backend_pid()) AS ended",
                &[],
            )
            .await
            .unwrap();
        if ended > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the query never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = victim.await.unwrap().expect_err("the query was cut off");
    assert!(error.is_unavailable(), "SQLSTATE 57P01 became {error:?}");
}
