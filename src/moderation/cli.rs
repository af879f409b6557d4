//! `restaurant-review moderate …`: the moderators' actions from a shell, with the app's own
//! settings (so in App Service's SSH console it signs in with the app's identity, and on a
//! laptop it uses the local database), writing the same audit log as the pages.

use crate::config::Settings;
use crate::domain::RestaurantId;
use crate::error_chain;
use crate::forms::RestaurantInput;
use crate::startup::Storage;

use super::{Actor, Moderation, ModerationError, Outcome, photo_outbox, sign_in};

pub const USAGE: &str = "\
Usage: restaurant-review moderate <command>

  reports                         reported reviews, most reported first
  recent                          the newest reviews (hidden ones marked)
  hide <review>                   hide a review (it leaves its restaurant's count and average)
  restore <review>                show a hidden review again
  dismiss <review>                keep a reported review and take it off the queue
  remove-photo <review>           delete a review's photo, keep the review
  delete-review <review>          delete a review and its photo for good
  edit-restaurant <id> [--name TEXT] [--address TEXT] [--description TEXT]
                                  change a restaurant (what is not given stays)
  merge <from> <into>             move restaurant <from>'s reviews to <into> and remove it;
                                  its address answers 301 to <into>'s
  log                             the newest audit log entries
  retry-photo-deletions           delete photos still waiting in the outbox now
  sign-in-link                    a one-time link to moderate in the browser (local only)

Settings come from the environment, as for serving (see README).
";

/// Runs the command; the process exit code.
pub async fn main(args: &[String]) -> u8 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if matches!(
        words.first().copied(),
        None | Some("help" | "-h" | "--help")
    ) {
        print!("{USAGE}");
        return if words.is_empty() { 2 } else { 0 };
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("restaurant-review moderate: configuration error: {error}");
            return 2;
        }
    };
    crate::startup::install_tls_provider();
    match run(&settings, &words).await {
        Ok(()) => 0,
        Err(CliError::Usage(message)) => {
            eprintln!("restaurant-review moderate: {message}\n\n{USAGE}");
            2
        }
        Err(CliError::Failed(message)) => {
            eprintln!("restaurant-review moderate: {message}");
            1
        }
    }
}

enum CliError {
    Usage(String),
    Failed(String),
}

impl From<ModerationError> for CliError {
    fn from(error: ModerationError) -> Self {
        match error {
            ModerationError::Invalid(errors) => CliError::Failed(format!(
                "not saved: {}",
                crate::forms::field::ALL
                    .iter()
                    .filter_map(|f| errors.get(f).map(|m| format!("{f}: {m}")))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            error => CliError::Failed(error_chain(&error)),
        }
    }
}

impl From<crate::db::DbError> for CliError {
    fn from(error: crate::db::DbError) -> Self {
        CliError::Failed(error_chain(&error))
    }
}

fn id(word: Option<&&str>, what: &str) -> Result<i64, CliError> {
    word.and_then(|w| w.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| CliError::Usage(format!("give the {what}'s number")))
}

fn restaurant(word: Option<&&str>) -> Result<RestaurantId, CliError> {
    RestaurantId::parse(word.copied().unwrap_or_default())
        .ok_or_else(|| CliError::Usage("give the restaurant's number".into()))
}

/// Who the audit log names for the command line: the shell's user and host.
fn actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown user".into());
    let host = std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("WEBSITE_INSTANCE_ID"))
        .unwrap_or_else(|_| "this machine".into());
    Actor(format!("command line ({user}@{host})"))
}

fn said(outcome: Outcome, done: &str) {
    match outcome {
        Outcome::Done => println!("{done}"),
        Outcome::AlreadySo => println!("Nothing to do: it was already so."),
    }
}

async fn run(settings: &Settings, words: &[&str]) -> Result<(), CliError> {
    let storage = Storage::open(settings).await.map_err(|e| {
        CliError::Failed(format!("cannot open the site's data: {}", error_chain(&e)))
    })?;
    let moderation = Moderation::new(storage.db.clone(), storage.photos.clone());
    let actor = actor();
    let result = dispatch(settings, &moderation, &actor, words).await;
    storage.db.close().await;
    result
}

async fn dispatch(
    settings: &Settings,
    moderation: &Moderation,
    actor: &Actor,
    words: &[&str],
) -> Result<(), CliError> {
    let arg = |i: usize| words.get(i);
    match words[0] {
        "reports" => {
            let queue = moderation.queue().await?;
            if queue.is_empty() {
                println!("No open reports.");
            }
            for queued in queue {
                let r = &queued.review;
                println!(
                    "review {} at restaurant {} ({}), by {}, {}★, {} report(s){}: {}",
                    r.id,
                    r.restaurant_id,
                    r.restaurant_name,
                    r.user_name,
                    r.rating,
                    queued.reports.len(),
                    if r.hidden { ", hidden" } else { "" },
                    r.review_text
                );
                for (reason, note) in &queued.reports {
                    println!(
                        "    - {reason}{}{note}",
                        if note.is_empty() { "" } else { ": " }
                    );
                }
            }
        }
        "recent" => {
            for r in moderation.recent_reviews(false).await? {
                println!(
                    "review {} at restaurant {} ({}), by {}, {}★{}{}: {}",
                    r.id,
                    r.restaurant_id,
                    r.restaurant_name,
                    r.user_name,
                    r.rating,
                    if r.image_name.is_some() {
                        ", with photo"
                    } else {
                        ""
                    },
                    if r.hidden { ", hidden" } else { "" },
                    r.review_text
                );
            }
        }
        "hide" => said(
            moderation.hide(actor, id(arg(1), "review")?).await?,
            "Review hidden.",
        ),
        "restore" => said(
            moderation.restore(actor, id(arg(1), "review")?).await?,
            "Review restored.",
        ),
        "dismiss" => said(
            moderation
                .dismiss_reports(actor, id(arg(1), "review")?)
                .await?,
            "Reports dismissed.",
        ),
        "remove-photo" => said(
            moderation
                .remove_photo(actor, id(arg(1), "review")?)
                .await?,
            "Photo removed.",
        ),
        "delete-review" => said(
            moderation
                .delete_review(actor, id(arg(1), "review")?)
                .await?,
            "Review deleted.",
        ),
        "edit-restaurant" => {
            let target = restaurant(arg(1))?;
            let current = moderation
                .db
                .restaurant(target)
                .await?
                .ok_or_else(|| CliError::Failed(format!("no restaurant {target}")))?;
            let mut input = RestaurantInput {
                restaurant_name: current.name,
                street_address: current.street_address,
                description: current.description,
            };
            let mut rest = words[2..].iter();
            while let Some(flag) = rest.next() {
                let value = rest
                    .next()
                    .ok_or_else(|| CliError::Usage(format!("{flag} needs a value")))?
                    .to_string();
                match *flag {
                    "--name" => input.restaurant_name = value,
                    "--address" => input.street_address = value,
                    "--description" => input.description = value,
                    other => return Err(CliError::Usage(format!("unknown option {other}"))),
                }
            }
            said(
                moderation.edit_restaurant(actor, target, &input).await?,
                "Restaurant saved.",
            );
        }
        "merge" => {
            let (from, into) = (restaurant(arg(1))?, restaurant(arg(2))?);
            said(
                moderation.merge_restaurants(actor, from, into).await?,
                &format!(
                    "Restaurant {from} merged into {into}; /{from}/ now answers 301 to /{into}/."
                ),
            );
        }
        "log" => {
            for entry in moderation.log(None, 50).await? {
                println!(
                    "{} {} {} by {}: {} -> {}",
                    entry.at,
                    entry.action,
                    entry.subject,
                    entry.moderator,
                    entry.before,
                    entry.after
                );
            }
        }
        "retry-photo-deletions" => {
            let left = photo_outbox::retry_pending(&moderation.db, &moderation.photos).await?;
            let waiting = photo_outbox::pending(&moderation.db).await?;
            println!("{left} photo(s) could not be deleted this time; {waiting} waiting in all.");
            if left > 0 {
                return Err(CliError::Failed(
                    "photo storage refused some deletes; try again later".into(),
                ));
            }
        }
        "sign-in-link" => {
            if !settings.listen.ip().is_loopback() {
                return Err(CliError::Failed(
                    "sign-in links work only while the app listens on a loopback address (it listens on all interfaces here); on Azure, sign in with Microsoft Entra ID".into(),
                ));
            }
            let token = sign_in::new_link(&moderation.db).await?;
            println!(
                "http://{}{}?token={token}",
                settings.listen,
                sign_in::SIGN_IN_PATH
            );
        }
        other => return Err(CliError::Usage(format!("unknown command {other:?}"))),
    }
    Ok(())
}
