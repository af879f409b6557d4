//! The real binary, started the way users and App Service start it: configuration from the
//! environment only.

use std::time::Duration;

use sqlx::Connection;

use crate::helpers::process::{AppProcess, BINARY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_configuration_it_creates_sqlite_under_data_and_stops_cleanly_on_sigterm() {
    let mut app = AppProcess::start(&[("LOG_FORMAT", "json")]);
    assert!(app.wait_healthy().await, "{}", app.output());
    assert!(
        app.dir
            .path()
            .join("data/restaurant-review.sqlite3")
            .exists()
    );
    assert!(app.dir.path().join("data/photos/thumbs").is_dir());
    let status = app.sigterm().await;
    assert!(status.success(), "exit status {status}");
    let lines = app.output_lines();
    assert!(!lines.is_empty());
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("received SIGTERM")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_postgres_settings_are_used_with_a_password() {
    let admin = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    if !admin.starts_with("postgres://postgres@127.0.0.1:5432/") {
        eprintln!("SKIPPED: this test drives the local trust-auth cluster only");
        return;
    }
    let database = format!("rr_bin_{}", uuid::Uuid::new_v4().simple());
    let created = async {
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(error) = created {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is required in CI: {error}"
        );
        eprintln!("SKIPPED: no PostgreSQL ({error})");
        return;
    }
    let secret = "hunter2-not-to-be-logged";
    let mut app = AppProcess::start(&[
        ("DBHOST", "127.0.0.1"),
        ("DBNAME", &database),
        ("DBUSER", "postgres"),
        ("DBPASS", secret),
        ("WEBSITE_HOSTNAME", "myapp.azurewebsites.net"),
    ]);
    assert!(app.wait_healthy().await, "{}", app.output());
    assert!(
        !app.dir
            .path()
            .join("data/restaurant-review.sqlite3")
            .exists(),
        "PostgreSQL, not SQLite"
    );
    app.sigterm().await;
    let output = app.output();
    assert!(output.contains("using PostgreSQL"), "{output}");
    assert!(!output.contains(secret), "the password was logged");
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_clear_startup_error_without_the_password() {
    let secret = "s3cret-pa55word";
    let mut app = AppProcess::start(&[(
        "DATABASE_URL",
        &format!("postgres://app:{secret}@127.0.0.1:1/restaurant"),
    )]);
    let status = app
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("gives up within 30 s");
    assert!(!status.success());
    let output = app.output();
    assert!(
        output.contains("could not start") && output.contains("could not open the database"),
        "{output}"
    );
    assert!(!output.contains(secret), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_postgres_settings_name_the_missing_variables() {
    let mut app = AppProcess::start(&[("DBHOST", "my-server"), ("DBNAME", "restaurant")]);
    let status = app
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits at once");
    assert_eq!(status.code(), Some(2));
    assert!(
        app.output().contains("DBUSER must be set"),
        "{}",
        app.output()
    );
}

/// Runs the binary with `args` and only `vars` in its environment, in a fresh directory.
fn run_binary(args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(BINARY)
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn doctor_on_a_laptop_with_nothing_set_is_green_and_names_the_embedded_setup() {
    let (code, report) = run_binary(&["doctor"], &[]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("✓ settings: SQLite at data/restaurant-review.sqlite3"),
        "{report}"
    );
    assert!(report.contains("✓ credential: none needed"), "{report}");
    assert!(report.ends_with("All checks passed.\n"), "{report}");
}

#[test]
fn doctor_with_a_bad_setting_fails_naming_the_variable() {
    let (code, report) = run_binary(
        &["doctor", "--json"],
        &[
            ("PHOTO_URL_MODE", "magic"),
            ("STORAGE_ACCOUNT_NAME", "acct1"),
        ],
    );
    assert_eq!(code, 1, "{report}");
    let parsed: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(parsed["ok"], false);
    assert_eq!(parsed["checks"][0]["outcome"], "fail");
    assert!(
        parsed["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("PHOTO_URL_MODE")
    );
}

#[test]
fn unknown_commands_and_arguments_are_refused_with_the_usage() {
    for args in [&["serve-please"][..], &["doctor", "--yes"][..]] {
        let (code, text) = run_binary(args, &[]);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(
            text.contains("Usage: restaurant-review"),
            "{args:?}: {text}"
        );
    }
    let (code, text) = run_binary(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(text.contains("doctor"), "{text}");
}
