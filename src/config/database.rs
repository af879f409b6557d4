//! Database settings: the embedded SQLite file, or PostgreSQL from `DATABASE_URL`, Service
//! Connector's `AZURE_POSTGRESQL_CONNECTIONSTRING`, or the tutorial's `DBHOST`/`DBNAME`/
//! `DBUSER` (without `DBPASS`: the identity's Microsoft Entra token is the password).

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::ConfigError;
use super::env::{Vars, invalid};

/// Azure Database for PostgreSQL flexible servers live under this domain; `DBHOST` is usually
/// just the server name.
pub const AZURE_POSTGRES_DOMAIN: &str = ".postgres.database.azure.com";

pub const DEFAULT_MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub enum DatabaseSettings {
    /// The zero-setup default: one file, created on first run.
    Sqlite {
        path: PathBuf,
    },
    Postgres(PostgresSettings),
}

/// PostgreSQL connection settings. Without a password the app signs in with a Microsoft Entra
/// token for its identity, which `db::postgres_connect_options` swaps in as the password.
/// `Debug` never shows the password.
#[derive(Clone)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// `None` means Entra token authentication.
    pub password: Option<SecretString>,
    pub ssl_mode: PgSslMode,
    /// CA certificate(s) to verify the server against instead of the public roots
    /// (`DBSSLROOTCERT`, libpq's `sslrootcert`): for a private CA, or a test server.
    pub ssl_root_cert: Option<PathBuf>,
    /// Pool connections older than this are closed and reopened (with a current token).
    pub max_connection_lifetime: Duration,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("max_connection_lifetime", &self.max_connection_lifetime)
            .finish()
    }
}

impl PostgresSettings {
    /// Parses a `postgres://user:pass@host:port/db?sslmode=...` URL.
    pub fn from_url(text: &str) -> Result<Self, ConfigError> {
        let password = url_password(text);
        let options = PgConnectOptions::from_str(text).map_err(|e| {
            let mut reason = e.to_string();
            if let Some((raw, decoded)) = &password {
                reason = reason
                    .replace(raw.as_str(), "<redacted>")
                    .replace(decoded.expose_secret(), "<redacted>");
            }
            invalid("DATABASE_URL", reason)
        })?;
        Ok(Self {
            host: options.get_host().to_owned(),
            port: options.get_port(),
            database: options
                .get_database()
                .unwrap_or(options.get_username())
                .to_owned(),
            user: options.get_username().to_owned(),
            // PgConnectOptions keeps the password private; it is read from the URL itself.
            password: password.map(|(_, decoded)| decoded),
            ssl_mode: options.get_ssl_mode(),
            ssl_root_cert: None,
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
        })
    }

    /// Parses Service Connector's libpq `key=value` string (no password: Entra auth), e.g.
    /// `host=srv.postgres.database.azure.com port=5432 dbname=restaurant user=app sslmode=require`.
    pub fn from_connection_string(text: &str) -> Result<Self, ConfigError> {
        let pairs: HashMap<String, String> = libpq_pairs(text)?.into_iter().collect();
        let take = |key: &str| pairs.get(key).cloned();
        let missing = |key: &str| ConfigError::ConnectionString(format!("it has no {key}"));
        let host = postgres_host(&take("host").ok_or_else(|| missing("host"))?);
        let ssl_mode = match take("sslmode") {
            // `require` from Service Connector: verify the certificate as well on Azure.
            Some(mode) if mode == "require" && host.ends_with(AZURE_POSTGRES_DOMAIN) => {
                PgSslMode::VerifyFull
            }
            Some(mode) => PgSslMode::from_str(&mode)
                .map_err(|e| ConfigError::ConnectionString(e.to_string()))?,
            None => default_ssl_mode(&host),
        };
        Ok(Self {
            port: match take("port") {
                Some(port) => port.parse().map_err(|_| {
                    ConfigError::ConnectionString(format!("port {port:?} is not a number"))
                })?,
                None => 5432,
            },
            database: take("dbname").ok_or_else(|| missing("dbname"))?,
            user: take("user").ok_or_else(|| missing("user"))?,
            password: take("password")
                .filter(|p| !p.is_empty())
                .map(SecretString::from),
            host,
            ssl_mode,
            ssl_root_cert: take("sslrootcert").map(PathBuf::from),
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
        })
    }
}

/// Azure requires TLS; verify the certificate there. Elsewhere use TLS when offered.
fn default_ssl_mode(host: &str) -> PgSslMode {
    if host.ends_with(AZURE_POSTGRES_DOMAIN) {
        PgSslMode::VerifyFull
    } else {
        PgSslMode::Prefer
    }
}

/// Splits a libpq connection string into pairs as libpq does: values may be single-quoted,
/// `\` escapes the next character (quoted or not), and only ASCII whitespace separates.
/// Written by hand: no maintained crate parses libpq's key=value format on its own.
fn libpq_pairs(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.next_if(is_libpq_space).is_some() {}
    };
    loop {
        skip_spaces(&mut chars);
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !is_libpq_space(c))).collect();
        skip_spaces(&mut chars);
        if chars.next() != Some('=') {
            return Err(ConfigError::ConnectionString(format!(
                "expected key=value at {key:?}"
            )));
        }
        skip_spaces(&mut chars);
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.extend(chars.next()),
                Some('\'') if quoted => break,
                Some(c) if !quoted && is_libpq_space(&c) => break,
                Some(c) => value.push(c),
                None if quoted => {
                    return Err(ConfigError::ConnectionString("unterminated quote".into()));
                }
                None => break,
            }
        }
        pairs.push((key, value));
    }
}

/// libpq's `isspace` in the C locale: a no-break space is part of a value, as in libpq.
fn is_libpq_space(c: &char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// The password of a `scheme://user:password@host/...` URL, as written and percent-decoded.
fn url_password(text: &str) -> Option<(String, SecretString)> {
    let url = url::Url::parse(text).ok()?;
    let raw = url.password().filter(|p| !p.is_empty())?.to_owned();
    let decoded = percent_encoding::percent_decode_str(&raw)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((raw, SecretString::from(decoded)))
}

pub(super) fn from_vars(vars: &Vars, data_dir: &str) -> Result<DatabaseSettings, ConfigError> {
    if let Some(url) = vars.get("DATABASE_URL") {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(DatabaseSettings::Sqlite { path: path.into() });
        }
        let mut settings = PostgresSettings::from_url(&url)?;
        settings.max_connection_lifetime = connection_lifetime(vars)?;
        return Ok(DatabaseSettings::Postgres(settings));
    }
    if let Some(text) = vars.get("AZURE_POSTGRESQL_CONNECTIONSTRING") {
        let mut settings = PostgresSettings::from_connection_string(&text)?;
        settings.max_connection_lifetime = connection_lifetime(vars)?;
        return Ok(DatabaseSettings::Postgres(settings));
    }

    let (host, name, user) = (vars.get("DBHOST"), vars.get("DBNAME"), vars.get("DBUSER"));
    if host.is_none() && name.is_none() && user.is_none() {
        return Ok(DatabaseSettings::Sqlite {
            path: PathBuf::from(data_dir).join("restaurant-review.sqlite3"),
        });
    }
    let missing: Vec<&str> = [("DBHOST", &host), ("DBNAME", &name), ("DBUSER", &user)]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    let (Some(host), Some(database), Some(user)) = (host, name, user) else {
        return Err(ConfigError::IncompletePostgres {
            missing: missing.join(", "),
        });
    };
    let host = postgres_host(&host);
    let ssl_mode = match vars.get("DBSSLMODE") {
        Some(mode) => {
            PgSslMode::from_str(&mode).map_err(|e| invalid("DBSSLMODE", e.to_string()))?
        }
        None => default_ssl_mode(&host),
    };
    Ok(DatabaseSettings::Postgres(PostgresSettings {
        host,
        port: vars.parse("DBPORT")?.unwrap_or(5432),
        database,
        user,
        // Without DBPASS the app signs in with its identity's Entra token, as the tutorial does.
        password: vars.get("DBPASS").map(SecretString::from),
        ssl_mode,
        ssl_root_cert: vars.get("DBSSLROOTCERT").map(PathBuf::from),
        max_connection_lifetime: connection_lifetime(vars)?,
    }))
}

/// `DB_CONNECTION_MAX_LIFETIME` in seconds (default 30 minutes).
fn connection_lifetime(vars: &Vars) -> Result<Duration, ConfigError> {
    match vars.get("DB_CONNECTION_MAX_LIFETIME") {
        None => Ok(DEFAULT_MAX_CONNECTION_LIFETIME),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| *s >= 1)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                invalid(
                    "DB_CONNECTION_MAX_LIFETIME",
                    format!("{text:?} is not a number of seconds"),
                )
            }),
    }
}

/// `DBHOST` as the tutorial sets it is the server name (`my-server`); a value that is already a
/// host name or address (`localhost`, `10.0.0.4`, `db.example.com`) is used as it is.
pub fn postgres_host(dbhost: &str) -> String {
    let dbhost = dbhost.trim();
    if dbhost.contains('.') || dbhost.contains(':') || dbhost.eq_ignore_ascii_case("localhost") {
        dbhost.to_owned()
    } else {
        format!("{dbhost}{AZURE_POSTGRES_DOMAIN}")
    }
}

#[cfg(test)]
#[path = "database_proptests.rs"]
mod proptests;
