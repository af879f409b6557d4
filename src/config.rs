//! Typed settings, read once from the environment.
//!
//! The variable names are the ones the Azure tutorial and App Service set (REFERENCE §1), so the
//! tutorial's `az webapp config appsettings set` steps carry over unchanged.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Azure Database for PostgreSQL flexible servers live under this domain; `DBHOST` is usually
/// just the server name.
pub const AZURE_POSTGRES_DOMAIN: &str = ".postgres.database.azure.com";

/// A value that must never be printed: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

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
    /// The variables Azure credentials read (`AZURE_*`, `IDENTITY_*`, `MSI_*`), for choosing one.
    pub azure: AzureEnvironment,
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
        Self {
            vars: vars
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("AZURE_") || k.starts_with("IDENTITY_") || k.starts_with("MSI_")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

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
#[derive(Clone)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    /// `None` means Entra token authentication.
    pub password: Option<Secret>,
    pub ssl_mode: PgSslMode,
    /// CA certificate(s) to verify the server against instead of the public roots
    /// (`DBSSLROOTCERT`, libpq's `sslrootcert`): for a private CA, or a test server.
    pub ssl_root_cert: Option<PathBuf>,
    /// Pool connections older than this are closed and reopened (with a current token).
    pub max_connection_lifetime: Duration,
}

pub const DEFAULT_MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);

impl fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: redact_url_error(&e.to_string(), url),
        })?;
        // PgConnectOptions keeps the password private; read it from the URL itself.
        let password = url_password(url);
        Ok(Self {
            host: options.get_host().to_owned(),
            port: options.get_port(),
            database: options
                .get_database()
                .unwrap_or(options.get_username())
                .to_owned(),
            user: options.get_username().to_owned(),
            password,
            ssl_mode: options.get_ssl_mode(),
            ssl_root_cert: None,
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
        })
    }

    /// Parses Service Connector's libpq `key=value` string (no password: Entra auth), e.g.
    /// `host=srv.postgres.database.azure.com port=5432 dbname=restaurant user=app sslmode=require`.
    pub fn from_connection_string(text: &str) -> Result<Self, ConfigError> {
        let mut pairs = HashMap::new();
        for (key, value) in libpq_pairs(text)? {
            pairs.insert(key, value);
        }
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
            None if host.ends_with(AZURE_POSTGRES_DOMAIN) => PgSslMode::VerifyFull,
            None => PgSslMode::Prefer,
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
            password: take("password").filter(|p| !p.is_empty()).map(Secret::new),
            host,
            ssl_mode,
            ssl_root_cert: take("sslrootcert").map(PathBuf::from),
            max_connection_lifetime: DEFAULT_MAX_CONNECTION_LIFETIME,
        })
    }
}

/// Splits a libpq connection string into pairs; values may be single-quoted with `\'` escapes.
fn libpq_pairs(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(ConfigError::ConnectionString(format!(
                "expected key=value at {key:?}"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(ConfigError::ConnectionString("unterminated quote".into())),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.push((key, value));
    }
}

fn redact_url_error(message: &str, url: &str) -> String {
    match url_password(url) {
        Some(password) if !password.expose().is_empty() => {
            message.replace(password.expose(), "<redacted>")
        }
        _ => message.to_owned(),
    }
}

/// The percent-decoded password of a `scheme://user:password@host/...` URL, if any.
fn url_password(url: &str) -> Option<Secret> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    let decoded = percent_encoding::percent_decode_str(password)
        .decode_utf8()
        .ok()?;
    Some(Secret::new(decoded.into_owned()))
}

#[derive(Debug, Clone)]
pub enum PhotoSettings {
    /// Photos as files in a local directory, served by the app itself.
    Local { dir: PathBuf },
    /// Photos in Azure Blob Storage, signed in with the app's identity.
    AzureBlob(BlobSettings),
}

/// How pages link to photos in Blob Storage (`PHOTO_URL_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoUrlMode {
    /// The blob's own URL, as in the tutorial: needs a container with anonymous read access.
    Public,
    /// A short-lived read-only user-delegation SAS made with the identity: no public access
    /// needed. The default.
    Sas,
    /// The app streams the photo itself: needs neither.
    Proxy,
}

impl PhotoUrlMode {
    /// The `PHOTO_URL_MODE` value that selects this mode.
    pub fn name(self) -> &'static str {
        match self {
            PhotoUrlMode::Public => "public",
            PhotoUrlMode::Sas => "sas",
            PhotoUrlMode::Proxy => "proxy",
        }
    }
}

#[derive(Clone)]
pub struct BlobSettings {
    /// `https://<account>.blob.core.windows.net`, or an emulator's path-style
    /// `https://127.0.0.1:10000/devstoreaccount1`; never a trailing slash.
    pub endpoint: String,
    pub account: String,
    pub container: String,
    pub url_mode: PhotoUrlMode,
    /// A path-style endpoint (an emulator): the container is created when missing.
    pub emulator: bool,
    /// Extra CA to trust (`STORAGE_CA_CERT_FILE`), for an emulator's test certificate.
    pub ca_certificate_pem: Option<Vec<u8>>,
}

impl fmt::Debug for BlobSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobSettings")
            .field("endpoint", &self.endpoint)
            .field("container", &self.container)
            .field("url_mode", &self.url_mode)
            .field("emulator", &self.emulator)
            .finish_non_exhaustive()
    }
}

impl BlobSettings {
    /// The origin pages load photos from in `public` and `sas` modes (for the CSP).
    pub fn origin(&self) -> String {
        match self
            .endpoint
            .find("://")
            .and_then(|i| self.endpoint[i + 3..].find('/').map(|j| i + 3 + j))
        {
            Some(end) => self.endpoint[..end].to_owned(),
            None => self.endpoint.clone(),
        }
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// `STORAGE_ACCOUNT_NAME` (a name, or a full URL for an emulator) or Service Connector's
/// `AZURE_STORAGEBLOB_RESOURCEENDPOINT`; `None` keeps photos on local disk.
fn blob_from_vars(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<BlobSettings>, ConfigError> {
    let (name, value) = match (
        get("STORAGE_ACCOUNT_NAME"),
        get("AZURE_STORAGEBLOB_RESOURCEENDPOINT"),
    ) {
        (Some(v), _) => ("STORAGE_ACCOUNT_NAME", v),
        (None, Some(v)) => ("AZURE_STORAGEBLOB_RESOURCEENDPOINT", v),
        (None, None) => return Ok(None),
    };
    let (endpoint, account, emulator) = if value.contains("://") {
        let url = reqwest::Url::parse(&value)
            .map_err(|e| invalid(name, format!("{value:?} is not a URL: {e}")))?;
        if url.scheme() != "https" {
            return Err(invalid(
                name,
                "Blob Storage needs https:// to sign in with a token",
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid(name, "the URL has no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        match url
            .path_segments()
            .and_then(|mut s| s.find(|p| !p.is_empty()))
        {
            // Path-style, as emulators use: https://127.0.0.1:10000/devstoreaccount1
            Some(account) => (
                format!("https://{authority}/{account}"),
                account.to_owned(),
                true,
            ),
            None => {
                let account = host.split('.').next().unwrap_or(host).to_owned();
                (format!("https://{authority}"), account, false)
            }
        }
    } else {
        let valid = (3..=24).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(invalid(
                name,
                format!(
                    "{value:?} is not a storage account name (3-24 lowercase letters and digits)"
                ),
            ));
        }
        (
            format!("https://{value}.blob.core.windows.net"),
            value,
            false,
        )
    };
    let container = get("STORAGE_CONTAINER_NAME").unwrap_or_else(|| "photos".to_owned());
    let valid_container = (3..=63).contains(&container.len())
        && container
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !container.starts_with('-')
        && !container.contains("--");
    if !valid_container {
        return Err(invalid(
            "STORAGE_CONTAINER_NAME",
            format!(
                "{container:?} is not a container name (3-63 lowercase letters, digits and single hyphens)"
            ),
        ));
    }
    let url_mode = match get("PHOTO_URL_MODE").as_deref() {
        None | Some("sas") => PhotoUrlMode::Sas,
        Some("public") => PhotoUrlMode::Public,
        Some("proxy") => PhotoUrlMode::Proxy,
        Some(other) => {
            return Err(invalid(
                "PHOTO_URL_MODE",
                format!("{other:?} is not public, sas or proxy"),
            ));
        }
    };
    let ca_certificate_pem = match get("STORAGE_CA_CERT_FILE") {
        Some(path) => Some(
            std::fs::read(&path)
                .map_err(|e| invalid("STORAGE_CA_CERT_FILE", format!("cannot read {path}: {e}")))?,
        ),
        None => None,
    };
    Ok(Some(BlobSettings {
        endpoint,
        account,
        container,
        url_mode,
        emulator,
        ca_certificate_pem,
    }))
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest accepted photo upload in bytes (`MAX_UPLOAD_BYTES`, default 8 MiB).
    pub max_photo_bytes: u64,
    /// When set, requests whose `Host` is not listed get 400 (`WEBSITE_HOSTNAME`, `ALLOWED_HOSTS`).
    pub allowed_hosts: Option<Vec<String>>,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// How long a request body may stall between two chunks.
    pub body_idle_timeout: Duration,
    /// Upper bound on a whole request, body upload included.
    pub request_timeout: Duration,
    /// How many photos are decoded and re-encoded at once (CPU and memory bound).
    pub image_workers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

pub const DEFAULT_MAX_PHOTO_BYTES: u64 = 8 * 1024 * 1024;

impl Settings {
    /// The zero-setup configuration: SQLite and photos under `data_dir`, localhost:8000.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8000),
            database: DatabaseSettings::Sqlite {
                path: data_dir.join("restaurant-review.sqlite3"),
            },
            photos: PhotoSettings::Local {
                dir: data_dir.join("photos"),
            },
            http: HttpSettings {
                max_photo_bytes: DEFAULT_MAX_PHOTO_BYTES,
                allowed_hosts: None,
                header_read_timeout: Duration::from_secs(10),
                body_idle_timeout: Duration::from_secs(30),
                request_timeout: Duration::from_secs(120),
                image_workers: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .clamp(1, 4),
            },
            log_format: LogFormat::Pretty,
            azure: AzureEnvironment::default(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Builds settings from a variable map (the process environment in production).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };

        let data_dir = get("DATA_DIR").unwrap_or_else(|| "data".to_owned());
        let mut settings = Self::local(&data_dir);

        if let Some(port) = get("PORT").or_else(|| get("WEBSITES_PORT")) {
            let port = port.parse::<u16>().map_err(|e| ConfigError::Invalid {
                name: "PORT",
                reason: e.to_string(),
            })?;
            settings.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        }
        if let Some(addr) = get("BIND_ADDRESS") {
            settings.listen =
                addr.parse()
                    .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                        name: "BIND_ADDRESS",
                        reason: e.to_string(),
                    })?;
        }

        settings.database = database_from_vars(&get, &data_dir)?;
        settings.azure = AzureEnvironment::from_vars(vars);

        if let Some(dir) = get("PHOTO_DIR") {
            settings.photos = PhotoSettings::Local { dir: dir.into() };
        }
        if let Some(blob) = blob_from_vars(&get)? {
            settings.photos = PhotoSettings::AzureBlob(blob);
        }

        if let Some(limit) = get("MAX_UPLOAD_BYTES") {
            settings.http.max_photo_bytes = limit
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1024)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "MAX_UPLOAD_BYTES",
                    reason: format!("{limit:?} is not a byte count of at least 1024"),
                })?;
        }

        let mut hosts: Vec<String> = Vec::new();
        if let Some(site) = get("WEBSITE_HOSTNAME") {
            hosts.push(site.to_ascii_lowercase());
        }
        if let Some(list) = get("ALLOWED_HOSTS") {
            hosts.extend(
                list.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty()),
            );
        }
        if !hosts.is_empty() && !hosts.iter().any(|h| h == "*") {
            settings.http.allowed_hosts = Some(hosts);
        }

        settings.log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    reason: format!("{other:?} is neither \"pretty\" nor \"json\""),
                });
            }
        };

        Ok(settings)
    }
}

fn database_from_vars(
    get: &dyn Fn(&str) -> Option<String>,
    data_dir: &str,
) -> Result<DatabaseSettings, ConfigError> {
    if let Some(url) = get("DATABASE_URL") {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            return Ok(DatabaseSettings::Sqlite { path: path.into() });
        }
        let mut settings = PostgresSettings::from_url(&url)?;
        settings.max_connection_lifetime = connection_lifetime(get)?;
        return Ok(DatabaseSettings::Postgres(settings));
    }
    if let Some(text) = get("AZURE_POSTGRESQL_CONNECTIONSTRING") {
        let mut settings = PostgresSettings::from_connection_string(&text)?;
        settings.max_connection_lifetime = connection_lifetime(get)?;
        return Ok(DatabaseSettings::Postgres(settings));
    }

    let host = get("DBHOST");
    let name = get("DBNAME");
    let user = get("DBUSER");
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
    // Without DBPASS the app signs in with its identity's Entra token, as the tutorial does.
    let password = get("DBPASS").map(Secret::new);
    let host = postgres_host(&host);
    let ssl_mode = match get("DBSSLMODE") {
        Some(mode) => PgSslMode::from_str(&mode).map_err(|e| ConfigError::Invalid {
            name: "DBSSLMODE",
            reason: e.to_string(),
        })?,
        // Azure requires TLS; verify the certificate there. Elsewhere use TLS when offered.
        None if host.ends_with(AZURE_POSTGRES_DOMAIN) => PgSslMode::VerifyFull,
        None => PgSslMode::Prefer,
    };
    let port = match get("DBPORT") {
        Some(port) => port
            .parse()
            .map_err(|e: std::num::ParseIntError| ConfigError::Invalid {
                name: "DBPORT",
                reason: e.to_string(),
            })?,
        None => 5432,
    };
    Ok(DatabaseSettings::Postgres(PostgresSettings {
        host,
        port,
        database,
        user,
        password,
        ssl_mode,
        ssl_root_cert: get("DBSSLROOTCERT").map(PathBuf::from),
        max_connection_lifetime: connection_lifetime(get)?,
    }))
}

/// `DB_CONNECTION_MAX_LIFETIME` in seconds (default 30 minutes).
fn connection_lifetime(get: &dyn Fn(&str) -> Option<String>) -> Result<Duration, ConfigError> {
    match get("DB_CONNECTION_MAX_LIFETIME") {
        None => Ok(DEFAULT_MAX_CONNECTION_LIFETIME),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| *s >= 1)
            .map(Duration::from_secs)
            .ok_or_else(|| ConfigError::Invalid {
                name: "DB_CONNECTION_MAX_LIFETIME",
                reason: format!("{text:?} is not a number of seconds"),
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

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
        assert_eq!(pg.password.as_ref().unwrap().expose(), "s@cret");
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
