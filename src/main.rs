use std::process::ExitCode;

use restaurant_review::config::Settings;
use restaurant_review::error_chain;
use restaurant_review::startup::Application;
use restaurant_review::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("restaurant-review: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    match Application::build(settings).await {
        Ok(app) => {
            tracing::info!("listening on http://{}", app.local_addr());
            app.run_until_stopped().await;
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "could not start");
            ExitCode::FAILURE
        }
    }
}
