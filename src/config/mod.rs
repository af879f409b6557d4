//! Typed settings, read once from the environment, one module per subsystem.
//!
//! The variable names are the ones the Azure tutorial and App Service set, so the tutorial's
//! `az webapp config appsettings set` steps carry over unchanged.

mod blob;
mod database;
mod env;
mod http;
mod moderation;
mod rate_limit;
mod telemetry;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use blob::{BlobSettings, PhotoSettings, PhotoUrlMode};
pub use database::{
    AZURE_POSTGRES_DOMAIN, AZURE_POSTGRES_DOMAINS, AuthRule, DATABASE_AUTH,
    DEFAULT_MAX_CONNECTION_LIFETIME, DEFAULT_POOL_SIZE, DatabaseSettings, PostgresSettings,
    PostgresSource, choose_auth, is_azure_postgres_host, postgres_host,
};
pub use http::{DEFAULT_MAX_PHOTO_BYTES, DEFAULT_PHOTO_MEMORY_LIMIT, HttpSettings};
pub use moderation::{MODERATOR_ROLE, ModerationSettings};
pub use rate_limit::RateLimitSettings;
/// Values that must never be printed: `Debug` shows a placeholder (the `secrecy` crate).
pub use secrecy::{ExposeSecret, SecretString};
pub use telemetry::{
    AppInsightsSettings, MONITOR_SCOPE, OtlpSettings, ParentRoot, QueueSettings, Sampler,
    TelemetrySettings,
};

#[cfg(test)]
pub(crate) use env::vars as test_vars;
use env::{Vars, invalid};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(
        "PostgreSQL is only partly configured: {missing} must be set as well (set DBHOST, DBNAME and DBUSER, or DATABASE_URL; leave them all unset for the embedded SQLite database)"
    )]
    IncompletePostgres { missing: String },
    #[error("AZURE_POSTGRESQL_CONNECTIONSTRING is not valid: {0}")]
    ConnectionString(String),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen. `PORT`/`WEBSITES_PORT` (App Service) bind all interfaces.
    pub listen: SocketAddr,
    pub database: DatabaseSettings,
    pub photos: PhotoSettings,
    pub http: HttpSettings,
    pub log_format: LogFormat,
    /// How often one client may post reviews and restaurants.
    pub rate_limit: RateLimitSettings,
    /// The variables Azure credentials read (`AZURE_*`, `IDENTITY_*`, `MSI_*`), for choosing one.
    pub azure: AzureEnvironment,
    /// Who may moderate (App Service authentication and `MODERATORS`).
    pub moderation: ModerationSettings,
    /// Where traces, logs and metrics go (nowhere unless configured).
    pub telemetry: TelemetrySettings,
}

/// The Azure identity variables, kept for credential selection. `Debug` shows names only.
#[derive(Clone, Default)]
pub struct AzureEnvironment {
    pub vars: HashMap<String, String>,
}

impl fmt::Debug for AzureEnvironment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("AzureEnvironment")
            .field("set", &names)
            .finish()
    }
}

impl AzureEnvironment {
    fn from_vars(vars: &HashMap<String, String>) -> Self {
        let azure = |k: &String| {
            k.starts_with("AZURE_") || k.starts_with("IDENTITY_") || k.starts_with("MSI_")
        };
        Self {
            vars: vars
                .iter()
                .filter(|(k, _)| azure(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Settings {
    /// The zero-setup configuration: SQLite and photos under `data_dir`, localhost:8000.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database: DatabaseSettings::Sqlite {
                path: data_dir.join("restaurant-review.sqlite3"),
            },
            photos: PhotoSettings::Local {
                dir: data_dir.join("photos"),
            },
            http: HttpSettings::default(),
            log_format: LogFormat::Pretty,
            rate_limit: RateLimitSettings::default(),
            azure: AzureEnvironment::default(),
            moderation: ModerationSettings::default(),
            telemetry: TelemetrySettings::default(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Builds settings from a variable map (the process environment in production).
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(map);
        let data_dir = vars.get("DATA_DIR").unwrap_or_else(|| "data".to_owned());
        let mut settings = Self::local(&data_dir);
        settings.listen = http::listen_from_vars(&vars)?;
        settings.database = database::from_vars(&vars, &data_dir)?;
        settings.azure = AzureEnvironment::from_vars(map);
        if let Some(dir) = vars.get("PHOTO_DIR") {
            settings.photos = PhotoSettings::Local { dir: dir.into() };
        }
        if let Some(blob) = blob::from_vars(&vars)? {
            settings.photos = PhotoSettings::AzureBlob(blob);
        }
        settings.http = http::from_vars(&vars)?;
        settings.moderation = moderation::from_vars(&vars)?;
        settings.rate_limit = rate_limit::from_vars(&vars)?;
        // Telemetry: APPLICATIONINSIGHTS_AUTHENTICATION_STRING's ClientId names the identity
        // when AZURE_CLIENT_ID does not (one identity signs in everywhere).
        settings.telemetry = telemetry::from_vars(&vars)?;
        if let Some(id) = settings
            .telemetry
            .app_insights
            .as_ref()
            .and_then(|a| a.client_id.clone())
        {
            settings
                .azure
                .vars
                .entry("AZURE_CLIENT_ID".into())
                .or_insert(id);
        }
        settings.log_format = match vars.get("LOG_FORMAT").as_deref() {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("{other:?} is neither \"pretty\" nor \"json\""),
                ));
            }
        };
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgSslMode;

    use super::env::vars;
    use super::*;

    #[test]
    fn no_variables_means_sqlite_under_data_on_localhost_8000() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert!(
            matches!(s.database, DatabaseSettings::Sqlite { ref path } if path.ends_with("data/restaurant-review.sqlite3"))
        );
        assert_eq!(s.listen.to_string(), "127.0.0.1:8000");
        assert!(s.http.allowed_hosts.is_none());
    }

    #[test]
    fn app_service_port_binds_all_interfaces() {
        let s = Settings::from_vars(&vars(&[("WEBSITES_PORT", "8181")])).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:8181");
    }

    #[test]
    fn tutorial_dbhost_is_expanded_to_the_azure_domain_with_verified_tls() {
        let s = Settings::from_vars(&vars(&[
            ("DBHOST", "my-server"),
            ("DBNAME", "restaurant"),
            ("DBUSER", "my-identity"),
            ("DBPASS", "hunter2"),
        ]))
        .unwrap();
        let DatabaseSettings::Postgres(pg) = s.database else {
            panic!("expected PostgreSQL")
        };
        assert_eq!(pg.host, "my-server.postgres.database.azure.com");
        assert!(matches!(pg.ssl_mode, PgSslMode::VerifyFull));
        assert!(!format!("{pg:?}").contains("hunter2"));
    }

    #[test]
    fn a_host_name_in_dbhost_is_used_as_is() {
        assert_eq!(postgres_host("localhost"), "localhost");
        assert_eq!(postgres_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(postgres_host("db.internal.example"), "db.internal.example");
    }

    #[test]
    fn partial_postgres_settings_name_what_is_missing() {
        let err = Settings::from_vars(&vars(&[("DBHOST", "x")])).unwrap_err();
        assert!(err.to_string().contains("DBNAME, DBUSER"), "{err}");
    }

    #[test]
    fn database_url_password_is_kept_secret() {
        let s = Settings::from_vars(&vars(&[(
            "DATABASE_URL",
            "postgres://app:s%40cret@127.0.0.1:5432/restaurant",
        )]))
        .unwrap();
        let DatabaseSettings::Postgres(pg) = s.database else {
            panic!("expected PostgreSQL")
        };
        assert_eq!(pg.password.as_ref().unwrap().expose_secret(), "s@cret");
        assert_eq!(pg.database, "restaurant");
        assert!(!format!("{pg:?}").contains("cret"));
    }

    #[test]
    fn website_hostname_and_allowed_hosts_form_the_allowlist() {
        let s = Settings::from_vars(&vars(&[
            ("WEBSITE_HOSTNAME", "MyApp.azurewebsites.net"),
            ("ALLOWED_HOSTS", "example.com, .example.org"),
        ]))
        .unwrap();
        assert_eq!(
            s.http.allowed_hosts.unwrap(),
            vec!["myapp.azurewebsites.net", "example.com", ".example.org"]
        );
    }

    #[test]
    fn tutorial_settings_without_dbpass_mean_entra_token_auth() {
        let s = Settings::from_vars(&vars(&[
            ("DBHOST", "my-server"),
            ("DBNAME", "restaurant"),
            ("DBUSER", "my-identity"),
            ("AZURE_CLIENT_ID", "abc"),
            ("IDENTITY_HEADER", "do-not-print"),
        ]))
        .unwrap();
        let DatabaseSettings::Postgres(pg) = s.database else {
            panic!("expected PostgreSQL")
        };
        assert!(pg.password.is_none());
        assert_eq!(s.azure.vars["AZURE_CLIENT_ID"], "abc");
        assert!(!format!("{:?}", s.azure).contains("do-not-print"));
    }

    #[test]
    fn service_connector_connection_string_is_understood() {
        let s = Settings::from_vars(&vars(&[(
            "AZURE_POSTGRESQL_CONNECTIONSTRING",
            "host=srv.postgres.database.azure.com port=5432 dbname=restaurant user='my identity' sslmode=require",
        )]))
        .unwrap();
        let DatabaseSettings::Postgres(pg) = s.database else {
            panic!("expected PostgreSQL")
        };
        assert_eq!(pg.host, "srv.postgres.database.azure.com");
        assert_eq!(pg.user, "my identity");
        assert_eq!(pg.database, "restaurant");
        assert!(pg.password.is_none());
        assert!(matches!(pg.ssl_mode, PgSslMode::VerifyFull));
        assert!(PostgresSettings::from_connection_string("host=x dbname").is_err());
    }

    #[test]
    fn storage_settings_from_the_tutorial_service_connector_and_an_emulator() {
        let blob = |pairs: &[(&str, &str)]| match Settings::from_vars(&vars(pairs)).unwrap().photos
        {
            PhotoSettings::AzureBlob(b) => b,
            other => panic!("expected Blob Storage, got {other:?}"),
        };
        let tutorial = blob(&[
            ("STORAGE_ACCOUNT_NAME", "mystorage123"),
            ("STORAGE_CONTAINER_NAME", "photos"),
        ]);
        assert_eq!(
            tutorial.endpoint,
            "https://mystorage123.blob.core.windows.net"
        );
        assert_eq!(tutorial.url_mode, PhotoUrlMode::Sas);
        assert!(!tutorial.emulator);
        let connector = blob(&[(
            "AZURE_STORAGEBLOB_RESOURCEENDPOINT",
            "https://acct.blob.core.windows.net/",
        )]);
        assert_eq!(
            (connector.endpoint.as_str(), connector.account.as_str()),
            ("https://acct.blob.core.windows.net", "acct")
        );
        let emulator = blob(&[
            (
                "STORAGE_ACCOUNT_NAME",
                "https://127.0.0.1:10000/devstoreaccount1/",
            ),
            ("PHOTO_URL_MODE", "proxy"),
        ]);
        assert_eq!(
            emulator.endpoint,
            "https://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(emulator.account, "devstoreaccount1");
        assert_eq!(emulator.origin(), "https://127.0.0.1:10000");
        assert!(emulator.emulator);
        assert_eq!(emulator.url_mode, PhotoUrlMode::Proxy);
        for bad in [
            vec![("STORAGE_ACCOUNT_NAME", "Not_A_Name")],
            vec![(
                "STORAGE_ACCOUNT_NAME",
                "http://127.0.0.1:10000/devstoreaccount1",
            )],
            vec![
                ("STORAGE_ACCOUNT_NAME", "acct"),
                ("STORAGE_CONTAINER_NAME", "Photos"),
            ],
            vec![
                ("STORAGE_ACCOUNT_NAME", "acct1"),
                ("PHOTO_URL_MODE", "magic"),
            ],
        ] {
            assert!(Settings::from_vars(&vars(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_invalid_upload_limit_is_a_clear_error() {
        let err = Settings::from_vars(&vars(&[("MAX_UPLOAD_BYTES", "lots")])).unwrap_err();
        assert!(err.to_string().contains("MAX_UPLOAD_BYTES"));
    }
}
