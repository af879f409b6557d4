//! The site in a real browser: Debian's Chromium, headless, driven by playwright-core (pinned in
//! package.json, installed by `npm ci`) through the flows in tests/browser/, each at desktop
//! (1280 × 800) and phone (390 × 844) size against the app spawned here on port 0.
//!
//! Every page a flow visits is also checked for console errors, uncaught exceptions, CSP
//! violations, horizontal scrolling (at 390 and 320 px), the skip link, and axe-core's WCAG 2.1
//! A and AA rules (axe-core pinned in package.json) at both sizes. A failing step leaves
//! a screenshot in target/browser-artefacts/ and its path in the output; `BROWSER_SCREENSHOTS=1`
//! keeps one of every page checked, under target/browser-artefacts/pages/.
//!
//! Without Chromium, Node or playwright-core the tests are skipped with the reason printed; in
//! CI (`CI=true`) that is a failure. scripts/test.sh installs all three.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rstest::rstest;

use crate::helpers::{Backend, TestApp};

/// A flow that takes longer is stuck: Playwright's own waits end after 10 s each.
const FLOW_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the browser tests cannot run here, if they cannot.
fn missing_tools() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("Node.js is not installed".into());
    }
    if !repo()
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return Some(
            "playwright-core is not installed; run `npm ci` (scripts/test.sh does)".into(),
        );
    }
    let chromium = chromium();
    if !chromium.exists() {
        return Some(format!(
            "no Chromium at {}; `apt-get install chromium` (scripts/test.sh does) or set CHROMIUM",
            chromium.display()
        ));
    }
    None
}

/// One-time moderator sign-in links, one per viewport a flow runs at (space-separated).
async fn sign_in_links(app: &TestApp) -> String {
    let mut links = Vec::new();
    for _ in 0..2 {
        let token = restaurant_review::moderation::sign_in::new_link(&app.db)
            .await
            .expect("a sign-in link");
        links.push(format!("{}/moderate/sign-in?token={token}", app.address));
    }
    links.join(" ")
}

/// Runs `node tests/browser/<flow>.mjs <app> <artefacts>` and fails the test, with the flow's
/// output, unless it exits 0.
async fn run_flow(app: &TestApp, flow: &str) {
    let artefacts = repo().join("target/browser-artefacts");
    std::fs::create_dir_all(&artefacts).expect("the artefact directory");
    // To a file rather than a pipe: nothing to drain while waiting.
    let log_path = artefacts.join(format!("{flow}.log"));
    let log = std::fs::File::create(&log_path).expect("the flow's log file");
    let mut child = Command::new("node")
        .arg(repo().join(format!("tests/browser/{flow}.mjs")))
        .arg(&app.address)
        .arg(&artefacts)
        .current_dir(repo())
        .env("CHROMIUM", chromium())
        .env("SIGN_IN_LINKS", sign_in_links(app).await)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("node starts");
    // Polled from a blocking thread: the app under test runs on this test's runtime.
    let status = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waiting for node") {
                return Some(status);
            }
            if started.elapsed() > FLOW_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("{output}");
    match status {
        Some(status) => assert!(
            status.success(),
            "browser flow {flow} failed ({status}); screenshots of the failing steps are in {}, the output in {}:\n{output}",
            artefacts.display(),
            log_path.display()
        ),
        None => panic!("browser flow {flow} took over {FLOW_TIMEOUT:?} and was stopped:\n{output}"),
    }
}

#[rstest]
#[case::adding_a_restaurant_with_the_navbar_skip_link_and_error_pages(
    "restaurant",
    Backend::Sqlite
)]
#[case::reviewing_with_an_upright_phone_photo_its_viewer_and_the_average("review", Backend::Sqlite)]
#[case::reviewing_on_postgres("review", Backend::Postgres)]
#[case::refusing_bad_reviews_keeps_what_was_typed("refusals", Backend::Sqlite)]
#[case::reviewing_by_keyboard_alone("keyboard", Backend::Sqlite)]
#[case::paging_through_the_list("paging", Backend::Sqlite)]
#[case::a_visitor_reports_and_a_moderator_hides_the_review("moderation", Backend::Sqlite)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_at_desktop_and_phone_size_the_flow_passes(
    #[case] flow: &str,
    #[case] backend: Backend,
) {
    if let Some(reason) = missing_tools() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the browser tests are required in CI: {reason}"
        );
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    if flow == "paging" {
        // One page of 20 and three more.
        for i in 0..23 {
            app.create_restaurant(&format!("Restaurant {i:02}")).await;
        }
    }
    run_flow(&app, flow).await;
}
