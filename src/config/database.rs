//! Database settings: the embedded SQLite file, or PostgreSQL from `DATABASE_URL`, Service
//! Connector's `AZURE_POSTGRESQL_CONNECTIONSTRING`, or the tutorial's `DBHOST`/`DBNAME`/
//! `DBUSER`. How the app signs in is chosen by [`choose_auth`]: a Microsoft Entra token on
//! Azure (its hosts, Service Connector, or `DATABASE_AUTH=entra`), else the password given or
//! none at all (a laptop's trust or peer setup).

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
/// The domains of Azure Database for PostgreSQL in every cloud: public, US Government, China.
pub const AZURE_POSTGRES_DOMAINS: [&str; 3] = [
    AZURE_POSTGRES_DOMAIN,
    ".postgres.database.usgovcloudapi.net",
    ".postgres.database.chinacloudapi.cn",
];
/// Names the sign-in explicitly: `entra` (a token for the app's identity) or `password` (the
/// password given, or none).
pub const DATABASE_AUTH: &str = "DATABASE_AUTH";

/// Whether `host` is an Azure Database for PostgreSQL server, in any Azure cloud.
pub fn is_azure_postgres_host(host: &str) -> bool {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    AZURE_POSTGRES_DOMAINS
        .iter()
        .any(|domain| host.ends_with(domain))
}

/// How the app signs in to PostgreSQL, named after the rule that chose it (the startup log and
/// `doctor` say which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRule {
    /// `DATABASE_AUTH=entra`.
    ExplicitEntra,
    /// `DATABASE_AUTH=password`: the password given, or none.
    ExplicitPassword,
    /// A password is given (in the URL, the connection string or `DBPASS`).
    PasswordGiven,
    /// Service Connector's `AZURE_POSTGRESQL_CONNECTIONSTRING`, which never has a password.
    ServiceConnector,
    /// The host is an Azure Database for PostgreSQL server.
    AzureHost,
    /// None of the above: no password at all, as a local trust or peer setup expects.
    NoPassword,
}

impl AuthRule {
    /// Whether the password is a Microsoft Entra token for the app's identity.
    pub fn uses_entra_token(self) -> bool {
        matches!(
            self,
            AuthRule::ExplicitEntra | AuthRule::ServiceConnector | AuthRule::AzureHost
        )
    }

    /// Why this sign-in was chosen, for the startup log.
    pub fn reason(self) -> &'static str {
        match self {
            AuthRule::ExplicitEntra => "DATABASE_AUTH=entra",
            AuthRule::ExplicitPassword => "DATABASE_AUTH=password",
            AuthRule::PasswordGiven => "a password is set",
            AuthRule::ServiceConnector => "AZURE_POSTGRESQL_CONNECTIONSTRING (Service Connector)",
            AuthRule::AzureHost => "the host is an Azure Database for PostgreSQL server",
            AuthRule::NoPassword => {
                "no password, not an Azure host and no DATABASE_AUTH: signing in without a password"
            }
        }
    }
}

/// Where the PostgreSQL settings came from, for [`choose_auth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostgresSource {
    DatabaseUrl,
    ServiceConnector,
    DbHost,
}

/// The sign-in rule: `DATABASE_AUTH` first; then a given password; then a token on Azure
/// (Service Connector, or an Azure host); else no password. `DATABASE_AUTH=entra` with a
/// password is refused rather than guessed at.
pub fn choose_auth(
    explicit: Option<&str>,
    password_given: bool,
    source: PostgresSource,
    host: &str,
) -> Result<AuthRule, ConfigError> {
    match explicit.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("entra") if password_given => Err(invalid(
            DATABASE_AUTH,
            "is entra, but a password is set too: remove one of them",
        )),
        Some("entra") => Ok(AuthRule::ExplicitEntra),
        Some("password") => Ok(AuthRule::ExplicitPassword),
        Some(other) => Err(invalid(
            DATABASE_AUTH,
            format!("{other:?} is neither entra nor password"),
        )),
        None if password_given => Ok(AuthRule::PasswordGiven),
        None if source == PostgresSource::ServiceConnector => Ok(AuthRule::ServiceConnector),
        None if is_azure_postgres_host(host) => Ok(AuthRule::AzureHost),
        None => Ok(AuthRule::NoPassword),
    }
}

pub const DEFAULT_MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The most PostgreSQL connections one instance opens, unless `DB_POOL_SIZE` says otherwise.
/// Chosen at Azure's distance (bench/http, PostgreSQL 1 ms away): a connection serves one page
/// per round trip, so 8 → 16 gave +45% for `GET /` at 32 concurrent clients, and 16 × two
/// instances stays inside a Burstable B1ms server's 50 connections.
pub const DEFAULT_POOL_SIZE: usize = 16;

#[derive(Debug, Clone)]
pub enum DatabaseSettings {
    /// The zero-setup default: one file, created on first run.
    Sqlite {
        path: PathBuf,
    },
    Postgres(PostgresSettings),
}

/// PostgreSQL connection settings. With a token sign-in ([`AuthRule::uses_entra_token`]) the
/// app signs in with a Microsoft Entra token for its identity, which
/// `db::postgres_connect_options` swaps in as the password. `Debug` never shows the password.
#[derive(Clone)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// `None`: a token, or no password, as `auth` says.
    pub password: Option<SecretString>,
    /// How the app signs in, and why.
    pub auth: AuthRule,
    pub ssl_mode: PgSslMode,
    /// CA certificate(s) to verify the server against instead of the public roots
    /// (`DBSSLROOTCERT`, libpq's `sslrootcert`): for a private CA, or a test server.
    pub ssl_root_cert: Option<PathBuf>,
    /// Pool connections older than this are closed and reopened (with a current token).
    pub max_connection_lifetime: Duration,
    /// The most connections the app opens (`DB_POOL_SIZE`).
    pub pool_size: usize,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("auth", &self.auth)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("max_connection_lifetime", &self.max_connection_lifetime)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl PostgresSettings {
    /// Whether the password is a Microsoft Entra token for the app's identity.
    pub fn uses_entra_token(&self) -> bool {
        self.auth.uses_entra_token()
    }

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
            auth: choose_auth(
                None,
                password.is_some(),
                PostgresSource::DatabaseUrl,
                options.get_host(),
            )?,
            password: password.map(|(_, decoded)| decoded),
            ssl_mode: options.get_ssl_mode(),
            ssl_root_cert: None,
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
            pool_size: DEFAULT_POOL_SIZE,
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
            Some(mode) if mode == "require" && is_azure_postgres_host(&host) => {
                PgSslMode::VerifyFull
            }
            Some(mode) => PgSslMode::from_str(&mode)
                .map_err(|e| ConfigError::ConnectionString(e.to_string()))?,
            None => default_ssl_mode(&host),
        };
        let password = take("password")
            .filter(|p| !p.is_empty())
            .map(SecretString::from);
        Ok(Self {
            auth: choose_auth(
                None,
                password.is_some(),
                PostgresSource::ServiceConnector,
                &host,
            )?,
            port: match take("port") {
                Some(port) => port.parse().map_err(|_| {
                    ConfigError::ConnectionString(format!("port {port:?} is not a number"))
                })?,
                None => 5432,
            },
            database: take("dbname").ok_or_else(|| missing("dbname"))?,
            user: take("user").ok_or_else(|| missing("user"))?,
            password,
            host,
            ssl_mode,
            ssl_root_cert: take("sslrootcert").map(PathBuf::from),
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
            pool_size: DEFAULT_POOL_SIZE,
        })
    }
}

/// Azure requires TLS; verify the certificate there. Elsewhere use TLS when offered.
fn default_ssl_mode(host: &str) -> PgSslMode {
    if is_azure_postgres_host(host) {
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
        settings.pool_size = pool_size(vars)?;
        settings.auth = auth_from_vars(vars, &settings, PostgresSource::DatabaseUrl)?;
        return Ok(DatabaseSettings::Postgres(settings));
    }
    if let Some(text) = vars.get("AZURE_POSTGRESQL_CONNECTIONSTRING") {
        let mut settings = PostgresSettings::from_connection_string(&text)?;
        settings.max_connection_lifetime = connection_lifetime(vars)?;
        settings.pool_size = pool_size(vars)?;
        settings.auth = auth_from_vars(vars, &settings, PostgresSource::ServiceConnector)?;
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
    // Without DBPASS, on an Azure host (the tutorial's DBHOST=<server name>), the app signs in
    // with its identity's Entra token, as the tutorial does.
    let password = vars.get("DBPASS").map(SecretString::from);
    let auth = choose_auth(
        vars.get(DATABASE_AUTH).as_deref(),
        password.is_some(),
        PostgresSource::DbHost,
        &host,
    )?;
    Ok(DatabaseSettings::Postgres(PostgresSettings {
        host,
        port: vars.parse("DBPORT")?.unwrap_or(5432),
        database,
        user,
        password,
        auth,
        ssl_mode,
        ssl_root_cert: vars.get("DBSSLROOTCERT").map(PathBuf::from),
        max_connection_lifetime: connection_lifetime(vars)?,
        pool_size: pool_size(vars)?,
    }))
}

/// The sign-in rule with `DATABASE_AUTH` taken into account.
fn auth_from_vars(
    vars: &Vars,
    settings: &PostgresSettings,
    source: PostgresSource,
) -> Result<AuthRule, ConfigError> {
    choose_auth(
        vars.get(DATABASE_AUTH).as_deref(),
        settings.password.is_some(),
        source,
        &settings.host,
    )
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

/// `DB_POOL_SIZE`: the most PostgreSQL connections one instance opens (default
/// [`DEFAULT_POOL_SIZE`]).
fn pool_size(vars: &Vars) -> Result<usize, ConfigError> {
    match vars.get("DB_POOL_SIZE") {
        None => Ok(DEFAULT_POOL_SIZE),
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "DB_POOL_SIZE",
                    format!("{text:?} is not a number of connections from 1 to 1000"),
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
mod tests {
    use super::*;
    use crate::config::env::vars;

    /// The sign-in each setup gets, and the rule that chose it.
    #[test]
    fn token_sign_in_only_on_azure_or_when_asked() {
        use AuthRule::*;
        // (case, variables, the rule chosen or None for a refusal naming DATABASE_AUTH)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<AuthRule>);
        let cases: &[Case] = &[
            (
                "a laptop's URL without a password",
                &[("DATABASE_URL", "postgres://me@localhost/db")],
                Some(NoPassword),
            ),
            (
                "a socket URL without a password",
                &[("DATABASE_URL", "postgres:///db?host=/var/run/postgresql")],
                Some(NoPassword),
            ),
            (
                "a URL with a password",
                &[("DATABASE_URL", "postgres://me:pw@localhost/db")],
                Some(PasswordGiven),
            ),
            (
                "an Azure URL without a password",
                &[(
                    "DATABASE_URL",
                    "postgres://id@srv.postgres.database.azure.com/db",
                )],
                Some(AzureHost),
            ),
            (
                "an Azure host in capitals with a trailing dot",
                &[(
                    "DATABASE_URL",
                    "postgres://id@SRV.Postgres.Database.Azure.COM./db",
                )],
                Some(AzureHost),
            ),
            (
                "US Government cloud",
                &[(
                    "DATABASE_URL",
                    "postgres://id@srv.postgres.database.usgovcloudapi.net/db",
                )],
                Some(AzureHost),
            ),
            (
                "Azure China",
                &[(
                    "DATABASE_URL",
                    "postgres://id@srv.postgres.database.chinacloudapi.cn/db",
                )],
                Some(AzureHost),
            ),
            (
                "a look-alike host is not Azure",
                &[(
                    "DATABASE_URL",
                    "postgres://id@postgres.database.azure.com.evil.example/db",
                )],
                Some(NoPassword),
            ),
            (
                "an Azure host with a password",
                &[(
                    "DATABASE_URL",
                    "postgres://id:pw@srv.postgres.database.azure.com/db",
                )],
                Some(PasswordGiven),
            ),
            (
                "the tutorial's settings on App Service",
                &[
                    ("DBHOST", "my-server"),
                    ("DBNAME", "restaurant"),
                    ("DBUSER", "my-identity"),
                ],
                Some(AzureHost),
            ),
            (
                "the tutorial's settings with a full Azure host name",
                &[
                    ("DBHOST", "my-server.postgres.database.azure.com"),
                    ("DBNAME", "restaurant"),
                    ("DBUSER", "my-identity"),
                ],
                Some(AzureHost),
            ),
            (
                "DBHOST=localhost without DBPASS",
                &[
                    ("DBHOST", "localhost"),
                    ("DBNAME", "restaurant"),
                    ("DBUSER", "me"),
                ],
                Some(NoPassword),
            ),
            (
                "DBHOST=localhost with DBPASS",
                &[
                    ("DBHOST", "localhost"),
                    ("DBNAME", "restaurant"),
                    ("DBUSER", "me"),
                    ("DBPASS", "pw"),
                ],
                Some(PasswordGiven),
            ),
            (
                "Service Connector",
                &[(
                    "AZURE_POSTGRESQL_CONNECTIONSTRING",
                    "host=srv.postgres.database.azure.com dbname=restaurant user=id sslmode=require",
                )],
                Some(ServiceConnector),
            ),
            (
                "Service Connector to a private host name",
                &[(
                    "AZURE_POSTGRESQL_CONNECTIONSTRING",
                    "host=10.0.0.4 dbname=r user=id",
                )],
                Some(ServiceConnector),
            ),
            (
                "asked for a token on a local stand-in",
                &[
                    ("DBHOST", "127.0.0.1"),
                    ("DBNAME", "restaurant"),
                    ("DBUSER", "id"),
                    ("DATABASE_AUTH", "entra"),
                ],
                Some(ExplicitEntra),
            ),
            (
                "asked for a token, in capitals, with a URL",
                &[
                    ("DATABASE_URL", "postgres://id@127.0.0.1/db"),
                    ("DATABASE_AUTH", "ENTRA"),
                ],
                Some(ExplicitEntra),
            ),
            (
                "asked for no token on an Azure host (a password comes from PGPASSWORD)",
                &[
                    (
                        "DATABASE_URL",
                        "postgres://id@srv.postgres.database.azure.com/db",
                    ),
                    ("DATABASE_AUTH", "password"),
                ],
                Some(ExplicitPassword),
            ),
            (
                "asked for no token with Service Connector",
                &[
                    (
                        "AZURE_POSTGRESQL_CONNECTIONSTRING",
                        "host=h dbname=r user=id",
                    ),
                    ("DATABASE_AUTH", "password"),
                ],
                Some(ExplicitPassword),
            ),
            (
                "a token asked for and a password given",
                &[
                    ("DATABASE_URL", "postgres://id:pw@localhost/db"),
                    ("DATABASE_AUTH", "entra"),
                ],
                None,
            ),
            (
                "an unknown DATABASE_AUTH",
                &[
                    ("DATABASE_URL", "postgres://id@localhost/db"),
                    ("DATABASE_AUTH", "token"),
                ],
                None,
            ),
        ];
        for (case, pairs, expected) in cases {
            let map = vars(pairs);
            let got = from_vars(&Vars(&map), "/tmp").map(|settings| match settings {
                DatabaseSettings::Postgres(pg) => pg.auth,
                DatabaseSettings::Sqlite { .. } => panic!("{case}: not PostgreSQL"),
            });
            match (expected, got) {
                (Some(expected), Ok(got)) => assert_eq!(got, *expected, "{case}"),
                (None, Err(error)) => {
                    assert!(error.to_string().contains(DATABASE_AUTH), "{case}: {error}")
                }
                (expected, got) => panic!("{case}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn only_the_token_rules_use_a_token() {
        use AuthRule::*;
        for (rule, token) in [
            (ExplicitEntra, true),
            (ServiceConnector, true),
            (AzureHost, true),
            (ExplicitPassword, false),
            (PasswordGiven, false),
            (NoPassword, false),
        ] {
            assert_eq!(rule.uses_entra_token(), token, "{rule:?}");
            assert!(!rule.reason().is_empty());
        }
    }
}

#[cfg(test)]
#[path = "database_proptests.rs"]
mod proptests;
