//! `restaurant-review moderate …`, the real binary with the app's settings, on both databases.

use std::process::Command;

use rstest::rstest;
use rstest_reuse::apply;

use super::{add_review, browser, report, totals};
use crate::helpers::process::BINARY;
use crate::helpers::{Backend, TestApp, both_backends};

/// Runs the command against the app's data; (exit code, stdout, stderr).
fn moderate(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY)
        .arg("moderate")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("USER", "ops")
        .env("HOSTNAME", "laptop")
        .envs(app.binary_environment())
        .output()
        .expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[apply(both_backends)]
async fn the_moderate_command_does_each_action_and_writes_the_same_audit_log(
    #[case] backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let keep = app.create_restaurant("Command Café").await;
    let duplicate = app.create_restaurant("Command Cafe").await;
    let spam = add_review(&app, keep, "Spammer", "1", true).await;
    let good = add_review(&app, keep, "Ann", "5", true).await;
    let moved = add_review(&app, duplicate, "Bob", "3", false).await;
    report(&app, &browser(), keep, spam, "spam", "").await;

    let (code, out, err) = moderate(&app, &["reports"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("review {spam}")) && out.contains("Spam or advertising"),
        "{out}"
    );

    let steps: [(&[&str], &str); 6] = [
        (&["hide", &spam.to_string()], "Review hidden."),
        (&["restore", &spam.to_string()], "Review restored."),
        (&["remove-photo", &good.to_string()], "Photo removed."),
        (&["delete-review", &spam.to_string()], "Review deleted."),
        (
            &[
                "edit-restaurant",
                &keep.to_string(),
                "--name",
                "Command Café & Bar",
            ],
            "Restaurant saved.",
        ),
        (
            &["merge", &duplicate.to_string(), &keep.to_string()],
            "merged into",
        ),
    ];
    for (args, said) in steps {
        let (code, out, err) = moderate(&app, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains(said), "{args:?}: {out}");
    }
    assert_eq!(totals(&app, keep).await, (2, 8), "Ann's 5 and Bob's 3");
    assert!(app.stored_photo_files().is_empty(), "both photos deleted");
    let (_, page) = app.get_text(&format!("/{keep}/")).await;
    assert!(
        page.contains("Command Café &#38; Bar") && page.contains("Bob"),
        "{page}"
    );
    assert!(!page.contains("Spammer"));
    assert_eq!(
        app.get(&format!("/{duplicate}/")).await.status(),
        reqwest::StatusCode::MOVED_PERMANENTLY
    );
    let _ = moved;

    let actors: Vec<(String,)> = app
        .db
        .fetch_all("SELECT moderator FROM moderation_log", &[])
        .await
        .unwrap();
    assert_eq!(actors.len(), 6);
    assert!(
        actors
            .iter()
            .all(|(who,)| who == "command line (ops@laptop)"),
        "{actors:?}"
    );
    let (code, out, _) = moderate(&app, &["log"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("merge restaurants") && out.contains("hide review"),
        "{out}"
    );

    // Refusals: a clear message and a non-zero exit, nothing changed.
    for (args, expected_code, said) in [
        (
            vec!["edit-restaurant", &keep.to_string(), "--name", ""],
            1,
            "restaurant_name",
        ),
        (vec!["hide", "99999"], 1, "no review"),
        (vec!["hide"], 2, "review's number"),
        (vec!["frobnicate"], 2, "unknown command"),
    ] {
        let (code, _, err) = moderate(&app, &args);
        assert_eq!(code, expected_code, "{args:?}: {err}");
        assert!(err.contains(said), "{args:?}: {err}");
    }
    assert_eq!(super::log_entries(&app).await, 6);
}
