//! `restaurant-review doctor`: checks, in order, everything the app needs from its environment
//! and, for each failure it recognises, prints the fix as a command to copy.
//!
//! It reads the same variables as the app (run it in the App Service SSH console, or locally
//! with the same environment) and changes nothing but a probe blob it deletes again. Each check
//! is one line, ✓ or ✗; a check that cannot run because an earlier one failed is shown as
//! skipped. Tokens are described by their claims, never shown.

mod azure;
mod database;
mod fixes;
mod migrations;
mod moderation;
mod storage;
mod telemetry;

use std::collections::HashMap;

use serde::Serialize;

use crate::config::{DatabaseSettings, PhotoSettings, Settings};
use fixes::AzureContext;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not run: an earlier check it depends on failed.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    /// What to run to fix a failure, when the failure is one the doctor knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Pass, detail, None)
    }

    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self::new(name, Outcome::Fail, detail, fix)
    }

    pub fn skip(name: impl Into<String>, because: &str) -> Self {
        Self::new(name, Outcome::Skip, format!("skipped: {because}"), None)
    }

    fn new(
        name: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        // One line a check: SDK messages carry line breaks.
        let detail: String = detail.into();
        Self {
            name: name.into(),
            outcome,
            detail: detail.split_whitespace().collect::<Vec<_>>().join(" "),
            fix,
        }
    }

    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// Every check that ran, in order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    fn push(&mut self, check: Check) -> bool {
        let passed = check.passed();
        self.checks.push(check);
        passed
    }

    fn push_fail(&mut self, name: &str, detail: String, fix: Option<String>) {
        self.checks.push(Check::fail(name, detail, fix));
    }

    /// Records each of `names` as not run, because an earlier check failed.
    fn skip(&mut self, names: &[&str], because: &str) {
        for name in names {
            self.checks.push(Check::skip(*name, because));
        }
    }

    fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .count()
    }

    /// The human-readable report: one line a check, fixes indented below their line.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let mark = match check.outcome {
                Outcome::Pass => "✓",
                Outcome::Fail => "✗",
                Outcome::Skip => "–",
            };
            text.push_str(&format!("{mark} {}: {}\n", check.name, check.detail));
            if let Some(fix) = &check.fix {
                text.push_str("    fix:\n");
                for line in fix.lines() {
                    text.push_str(&format!("      {line}\n"));
                }
            }
        }
        match self.failures() {
            0 => text.push_str("All checks passed.\n"),
            1 => text.push_str("1 check failed.\n"),
            n => text.push_str(&format!("{n} checks failed.\n")),
        }
        text
    }
}

/// Runs every check against the given environment (the process's, in production).
pub async fn run(vars: &HashMap<String, String>) -> Report {
    crate::startup::install_tls_provider();
    let mut report = Report::default();
    let context = AzureContext::from_vars(vars);
    let settings = match Settings::from_vars(vars) {
        Ok(settings) => settings,
        Err(error) => {
            report.push(Check::fail(
                "settings",
                error.to_string(),
                Some(context.fix_setting_hint()),
            ));
            return report;
        }
    };
    report.push(Check::pass("settings", describe(&settings)));
    report.push(moderation::check(&settings, vars));

    let tokens = azure::check_identity(&settings, &context, &mut report).await;
    if let DatabaseSettings::Postgres(pg) = &settings.database {
        database::check_postgres(pg, tokens.postgres.as_ref(), &context, &mut report).await;
    } else if let DatabaseSettings::Sqlite { path } = &settings.database {
        report.push(migrations::check_sqlite(path));
    }
    match &settings.photos {
        PhotoSettings::AzureBlob(blob) => {
            storage::check_blob(
                blob,
                tokens.storage.as_ref(),
                tokens.storage_oid.as_deref(),
                &context,
                &mut report,
            )
            .await;
        }
        PhotoSettings::Local { dir } => {
            report.push(storage::check_local_dir(dir));
        }
    }
    if let Some(app_insights) = &settings.telemetry.app_insights {
        telemetry::check_app_insights(
            app_insights,
            settings.telemetry.ca_certificate_pem.as_deref(),
            tokens.monitor.as_ref(),
            tokens.monitor_oid.as_deref(),
            &context,
            &mut report,
        )
        .await;
    }
    if let Some(claims) = tokens.first_claims() {
        report.push(azure::check_clock(claims));
    }
    report.ok = report.failures() == 0;
    report
}

/// One line saying what the settings ask for (no secrets: there are none in it).
fn describe(settings: &Settings) -> String {
    let database = match &settings.database {
        DatabaseSettings::Sqlite { path } => format!("SQLite at {}", path.display()),
        DatabaseSettings::Postgres(pg) => format!(
            "PostgreSQL {}@{}:{}/{} ({}, sslmode {})",
            pg.user,
            pg.host,
            pg.port,
            pg.database,
            match (pg.uses_entra_token(), &pg.password) {
                (true, _) => "Microsoft Entra token",
                (false, Some(_)) => "password",
                (false, None) => "no password",
            },
            database::ssl_mode_name(pg.ssl_mode)
        ),
    };
    let photos = match &settings.photos {
        PhotoSettings::Local { dir } => format!("photos in {}", dir.display()),
        PhotoSettings::AzureBlob(blob) => format!(
            "photos in Blob Storage {}/{} ({} links)",
            blob.endpoint,
            blob.container,
            blob.url_mode.name()
        ),
    };
    format!("{database}; {photos}")
}

/// `restaurant-review doctor [--json]`: prints the report and returns the exit status (0 when
/// every check passed, 1 otherwise, 2 for a usage error).
pub async fn main(args: &[String]) -> u8 {
    let mut json = false;
    for arg in args {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            other => {
                eprintln!("restaurant-review doctor: unknown argument {other:?}\n\n{USAGE}");
                return 2;
            }
        }
    }
    let report = run(&std::env::vars().collect()).await;
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("restaurant-review doctor: could not write JSON: {error}");
                return 2;
            }
        }
    } else {
        print!("{}", report.to_text());
    }
    u8::from(!report.ok)
}

/// Whether a file can be created in `dir` (creating `dir` if needed), proven by doing it.
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".doctor-{}", uuid::Uuid::new_v4()));
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}

pub const USAGE: &str = "\
Usage: restaurant-review doctor [--json]

Checks, with the app's own environment, everything it needs: settings, the Azure credential
and a token for each scope, DNS/TCP/TLS to the database, sign-in, migrations and privileges,
the Blob Storage container, a probe blob, the user-delegation key (sas mode), a test event to
Application Insights (when APPLICATIONINSIGHTS_CONNECTION_STRING is set), clock skew, and how
moderators sign in (reported, never a failure).
Prints one line a check (✓ or ✗) and, for each failure it knows, the command that fixes it.
Exits 0 when every check passed, 1 otherwise.

  --json   the same report as JSON, for machines
";
