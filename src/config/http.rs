//! HTTP settings: where to listen, the upload limit, the Host allowlist, the timeouts and the
//! bounds on connections and on the memory photos may use.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::ConfigError;
use super::env::{Vars, invalid};

pub const DEFAULT_MAX_PHOTO_BYTES: u64 = 8 * 1024 * 1024;

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
    /// How many photos are decoded and re-encoded at once (CPU bound).
    pub image_workers: usize,
    /// Most open client connections (`MAX_CONNECTIONS`); more wait in the listen backlog.
    pub max_connections: usize,
    /// Most memory, in bytes, that photos being decoded may hold at once, shared by all uploads
    /// (`PHOTO_MEMORY_LIMIT_MB`); a photo that needs more than all of it is refused.
    pub photo_memory_limit: u64,
    /// Origins allowed to call the JSON API from a browser (`API_CORS_ORIGINS`); none: no CORS.
    pub api_cors_origins: Vec<String>,
}

/// File descriptors kept back from client connections: the database pool, storage clients,
/// photo and SQLite files, logs.
const RESERVED_FILE_DESCRIPTORS: u64 = 128;
const MIB: u64 = 1024 * 1024;
/// Room for one 49-megapixel PNG (7000 × 7000) at a time, or seven 12-megapixel phone photos
/// (decoded at half size),
/// keeping the whole process under about 256 MB with everything else it holds.
pub const DEFAULT_PHOTO_MEMORY_LIMIT: u64 = 160 * MIB;

/// As many connections as the open-files limit allows after the reserve, within bounds that
/// keep a default sane on hosts with a tiny or a huge limit.
pub fn default_max_connections(open_files_limit: Option<u64>) -> usize {
    let limit = open_files_limit.unwrap_or(1024);
    limit
        .saturating_sub(RESERVED_FILE_DESCRIPTORS)
        .clamp(32, 16_384) as usize
}

/// The soft `RLIMIT_NOFILE` of this process, where the platform has one.
fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        // `None` from rustix means unlimited.
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Some(soft.unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_photo_bytes: DEFAULT_MAX_PHOTO_BYTES,
            allowed_hosts: None,
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            image_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(1, 4),
            max_connections: default_max_connections(open_files_limit()),
            photo_memory_limit: DEFAULT_PHOTO_MEMORY_LIMIT,
            api_cors_origins: Vec::new(),
        }
    }
}

/// `127.0.0.1:8000` by default; `PORT`/`WEBSITES_PORT` (App Service) bind all interfaces;
/// `BIND_ADDRESS` is exact.
pub(super) fn listen_from_vars(vars: &Vars) -> Result<SocketAddr, ConfigError> {
    let port = vars.get("PORT").or_else(|| vars.get("WEBSITES_PORT"));
    let mut listen = match port {
        Some(port) => {
            let port = port
                .parse::<u16>()
                .map_err(|e| invalid("PORT", e.to_string()))?;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
        }
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8000),
    };
    if let Some(addr) = vars.parse::<SocketAddr>("BIND_ADDRESS")? {
        listen = addr;
    }
    Ok(listen)
}

pub(super) fn from_vars(vars: &Vars) -> Result<HttpSettings, ConfigError> {
    let mut http = HttpSettings::default();
    if let Some(limit) = vars.get("MAX_UPLOAD_BYTES") {
        http.max_photo_bytes = limit
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1024)
            .ok_or_else(|| {
                invalid(
                    "MAX_UPLOAD_BYTES",
                    format!("{limit:?} is not a byte count of at least 1024"),
                )
            })?;
    }
    if let Some(max) = vars.parse::<usize>("MAX_CONNECTIONS")? {
        if max == 0 {
            return Err(invalid("MAX_CONNECTIONS", "must be at least 1"));
        }
        http.max_connections = max;
    }
    if let Some(megabytes) = vars.parse::<u64>("PHOTO_MEMORY_LIMIT_MB")? {
        if megabytes < 16 {
            return Err(invalid(
                "PHOTO_MEMORY_LIMIT_MB",
                "must be at least 16 (MiB), enough for a phone photo",
            ));
        }
        http.photo_memory_limit = megabytes.saturating_mul(MIB);
    }
    if let Some(list) = vars.get("API_CORS_ORIGINS") {
        http.api_cors_origins = cors_origins(&list)?;
    }
    let mut hosts: Vec<String> = Vec::new();
    if let Some(site) = vars.get("WEBSITE_HOSTNAME") {
        hosts.push(site.to_ascii_lowercase());
    }
    if let Some(list) = vars.get("ALLOWED_HOSTS") {
        hosts.extend(
            list.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty()),
        );
    }
    if !hosts.is_empty() && !hosts.iter().any(|h| h == "*") {
        http.allowed_hosts = Some(hosts);
    }
    Ok(http)
}

/// `https://app.example.com, http://localhost:3000`: each an origin (scheme, host, optional
/// port; no path), as browsers send it in `Origin`.
fn cors_origins(list: &str) -> Result<Vec<String>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let parsed = url::Url::parse(origin).ok();
            let serialized = parsed.as_ref().map(|u| u.origin().ascii_serialization());
            match serialized {
                Some(s) if s == origin.trim_end_matches('/') && s != "null" => Ok(s),
                _ => Err(invalid(
                    "API_CORS_ORIGINS",
                    format!("{origin:?} is not an origin like https://app.example.com"),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::vars;

    #[test]
    fn the_default_connection_cap_follows_the_open_files_limit_within_bounds() {
        for (limit, cap) in [
            (Some(1024), 896),
            (Some(65_536), 16_384),
            (Some(u64::MAX), 16_384),
            (Some(100), 32),
            (None, 896),
        ] {
            assert_eq!(default_max_connections(limit), cap, "{limit:?}");
        }
    }

    #[test]
    fn connection_cap_and_photo_memory_are_read_and_checked() {
        let map = vars(&[("MAX_CONNECTIONS", "50"), ("PHOTO_MEMORY_LIMIT_MB", "64")]);
        let http = from_vars(&Vars(&map)).unwrap();
        assert_eq!(http.max_connections, 50);
        assert_eq!(http.photo_memory_limit, 64 * MIB);
        for (name, value) in [
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "many"),
            ("PHOTO_MEMORY_LIMIT_MB", "8"),
            ("PHOTO_MEMORY_LIMIT_MB", "-1"),
        ] {
            let map = vars(&[(name, value)]);
            let err = from_vars(&Vars(&map)).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn cors_origins_are_origins_only() {
        assert_eq!(
            cors_origins("https://a.example, http://localhost:3000/").unwrap(),
            vec!["https://a.example", "http://localhost:3000"]
        );
        for bad in ["*", "a.example", "https://a.example/path", "null"] {
            assert!(cors_origins(bad).is_err(), "{bad}");
        }
    }
}
