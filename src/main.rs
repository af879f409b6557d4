use std::process::ExitCode;

use restaurant_review::config::Settings;
use restaurant_review::startup::Application;
use restaurant_review::{doctor, error_chain, moderation, telemetry};

const USAGE: &str = "\
Usage: restaurant-review            serve the site (configured from the environment; see README)
       restaurant-review doctor     check the environment and print the fix for each problem
       restaurant-review moderate   act as a moderator (reports, hide, delete, merge…; see `moderate help`)
       restaurant-review --version
";

#[tokio::main]
async fn main() -> ExitCode {
    restaurant_review::startup::install_tls_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => serve().await,
        Some("doctor") => ExitCode::from(doctor::main(&args[1..]).await),
        Some("moderate") => ExitCode::from(moderation::cli::main(&args[1..]).await),
        Some("-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("restaurant-review {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("restaurant-review: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("restaurant-review: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = telemetry::install(settings.log_format, &settings.telemetry) {
        eprintln!("restaurant-review: telemetry: {}", error_chain(&error));
        return ExitCode::from(2);
    }
    match Application::build(settings).await {
        Ok(app) => {
            tracing::info!("listening on http://{}", app.local_addr());
            if let Some(link) = app.sign_in_link() {
                // Printed, not logged: the token signs in as a moderator (as Jupyter's does).
                println!("To moderate, open this one-time sign-in link: {link}");
            }
            app.run_until_stopped().await;
            // The last spans and logs of the drain go out before the process ends.
            if let Some(telemetry) = telemetry::installed() {
                telemetry.flush().await;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not start");
            ExitCode::FAILURE
        }
    }
}
