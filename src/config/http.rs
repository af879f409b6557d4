//! HTTP settings: where to listen, the upload limit, the Host allowlist and the timeouts.

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
    /// How many photos are decoded and re-encoded at once (CPU and memory bound).
    pub image_workers: usize,
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
