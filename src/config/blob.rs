//! Photo storage settings: a local directory, or Azure Blob Storage from the tutorial's
//! `STORAGE_ACCOUNT_NAME` (or Service Connector's `AZURE_STORAGEBLOB_RESOURCEENDPOINT`).

use std::fmt;
use std::path::PathBuf;

use super::ConfigError;
use super::env::{Vars, invalid};

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
    /// A path-style endpoint (an emulator such as Azurite).
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
        url::Url::parse(&self.endpoint)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_else(|_| self.endpoint.clone())
    }
}

/// The endpoint, account name and whether it is path-style (an emulator), from a full URL.
fn from_url(name: &'static str, value: &str) -> Result<(String, String, bool), ConfigError> {
    let url = url::Url::parse(value)
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
    let first_segment = url
        .path_segments()
        .and_then(|mut s| s.find(|p| !p.is_empty()));
    Ok(match first_segment {
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
    })
}

/// `STORAGE_ACCOUNT_NAME` (a name, or a full URL for an emulator) or Service Connector's
/// `AZURE_STORAGEBLOB_RESOURCEENDPOINT`; `None` keeps photos on local disk.
pub(super) fn from_vars(vars: &Vars) -> Result<Option<BlobSettings>, ConfigError> {
    let (name, value) = match (
        vars.get("STORAGE_ACCOUNT_NAME"),
        vars.get("AZURE_STORAGEBLOB_RESOURCEENDPOINT"),
    ) {
        (Some(v), _) => ("STORAGE_ACCOUNT_NAME", v),
        (None, Some(v)) => ("AZURE_STORAGEBLOB_RESOURCEENDPOINT", v),
        (None, None) => return Ok(None),
    };
    let (endpoint, account, emulator) = if value.contains("://") {
        from_url(name, &value)?
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
        let endpoint = format!("https://{value}.blob.core.windows.net");
        (endpoint, value, false)
    };
    let container = vars
        .get("STORAGE_CONTAINER_NAME")
        .unwrap_or_else(|| "photos".to_owned());
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
    let url_mode = match vars.get("PHOTO_URL_MODE").as_deref() {
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
    let ca_certificate_pem = match vars.get("STORAGE_CA_CERT_FILE") {
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
