//! Photo storage: the container, a probe blob written, read and deleted, and (in `sas` mode) a
//! user-delegation key proven by fetching the probe through a SAS link without credentials.

use std::path::Path as FsPath;
use std::time::Duration;

use axum::http::Method;
use bytes::Bytes;
use object_store::azure::MicrosoftAzure;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::fixes::AzureContext;
use super::{Check, Report};
use crate::config::{BlobSettings, PhotoUrlMode};
use crate::identity::TokenSource;
use crate::photos::azure::{self as blob_client, BlobFailure, classify};
use crate::photos::store::{STORAGE_TIMEOUT, within_timeout as timed};

const PROBE_SAS_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// What a failed storage call means for the user, and its fix.
fn explain(
    error: &object_store::Error,
    blob: &BlobSettings,
    oid: Option<&str>,
    context: &AzureContext,
) -> (String, Option<String>) {
    let (failure, said) = classify(error);
    match failure {
        BlobFailure::ContainerNotFound => (
            format!("container {:?} does not exist ({said})", blob.container),
            Some(context.storage_container(&blob.account, &blob.container)),
        ),
        BlobFailure::AccessDenied => (
            format!("access denied: the identity has no data role on the account ({said})"),
            Some(context.storage_role(oid, &blob.account)),
        ),
        BlobFailure::TokenRefused => (format!("the token was refused ({said})"), None),
        BlobFailure::Other => (
            format!("cannot reach {} ({said})", blob.endpoint),
            Some("check STORAGE_ACCOUNT_NAME and the app's outbound network".into()),
        ),
    }
}

pub async fn check_blob(
    blob: &BlobSettings,
    tokens: Option<&TokenSource>,
    oid: Option<&str>,
    context: &AzureContext,
    report: &mut Report,
) {
    let later = ["probe blob", "user-delegation key"];
    let Some(tokens) = tokens else {
        report.skip(&["container"], "no token for Blob Storage");
        report.skip(&later, "no token for Blob Storage");
        return;
    };
    let client = match blob_client::client(blob, tokens.clone()) {
        Ok(client) => client,
        Err(error) => {
            report.push(Check::fail("container", crate::error_chain(&error), None));
            report.skip(&later, "the container check failed");
            return;
        }
    };
    let listed = timed(client.list_with_delimiter(Some(&Path::from("thumbs")))).await;
    if let Err(error) = listed {
        let (detail, fix) = explain(&error, blob, oid, context);
        report.push(Check::fail("container", detail, fix));
        report.skip(&later, "the container check failed");
        return;
    }
    report.push(Check::pass(
        "container",
        format!("{:?} exists at {}", blob.container, blob.endpoint),
    ));

    let probe = Path::from(format!("doctor-probe-{}.txt", uuid::Uuid::new_v4()));
    let content = Bytes::from_static(b"restaurant-review doctor probe");
    let options = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    let written = timed(client.put_opts(&probe, PutPayload::from(content.clone()), options)).await;
    if let Err(error) = written {
        let (detail, fix) = explain(&error, blob, oid, context);
        report.push(Check::fail("probe blob", format!("writing: {detail}"), fix));
        report.skip(&["user-delegation key"], "no probe blob");
        return;
    }
    let read = timed(async { client.get(&probe).await?.bytes().await }).await;
    let delegation = match blob.url_mode {
        PhotoUrlMode::Sas => Some(sas_fetch(&client, blob, &probe, &content).await),
        _ => None,
    };
    let deleted = timed(client.delete(&probe)).await;
    report.push(match (read, deleted) {
        (Ok(bytes), Ok(())) if bytes == content => Check::pass(
            "probe blob",
            format!("{probe} written, read back and deleted"),
        ),
        (Ok(_), Ok(())) => Check::fail(
            "probe blob",
            "read back different bytes than were written",
            None,
        ),
        (Err(error), _) | (_, Err(error)) => {
            let (detail, fix) = explain(&error, blob, oid, context);
            Check::fail("probe blob", detail, fix)
        }
    });
    report.push(delegation.unwrap_or_else(|| {
        Check::pass(
            "user-delegation key",
            format!("not needed (PHOTO_URL_MODE={})", blob.url_mode.name()),
        )
    }));
}

/// Signs a read-only link with a user-delegation key and fetches the probe through it with no
/// credentials, as a browser would.
async fn sas_fetch(
    client: &MicrosoftAzure,
    blob: &BlobSettings,
    probe: &Path,
    content: &Bytes,
) -> Check {
    const NAME: &str = "user-delegation key";
    let signed = timed(client.signed_url(Method::GET, probe, PROBE_SAS_LIFETIME)).await;
    let url = match signed {
        Ok(url) => url,
        Err(error) => {
            return Check::fail(
                NAME,
                format!(
                    "could not get one to sign photo links: {}",
                    crate::error_chain(&error)
                ),
                Some(
                    "the identity needs Storage Blob Data Contributor (it includes the delegator permission) on the storage account, or set PHOTO_URL_MODE=proxy"
                        .into(),
                ),
            );
        }
    };
    let mut http = reqwest::Client::builder().timeout(STORAGE_TIMEOUT);
    if let Some(pem) = &blob.ca_certificate_pem
        && let Ok(certificate) = reqwest::Certificate::from_pem(pem)
    {
        http = http.add_root_certificate(certificate);
    }
    let fetched = match http.build() {
        Ok(http) => http.get(url).send().await,
        Err(error) => return Check::fail(NAME, error.to_string(), None),
    };
    // The URL carries the SAS signature: never print it, only the outcome.
    match fetched {
        Ok(response) if response.status().is_success() => match response.bytes().await {
            Ok(bytes) if bytes == *content => Check::pass(
                NAME,
                "obtained; a read-only SAS link fetched the probe without credentials",
            ),
            _ => Check::fail(NAME, "the SAS link returned other bytes", None),
        },
        Ok(response) => Check::fail(
            NAME,
            format!(
                "obtained, but the SAS link was refused with HTTP {}",
                response.status()
            ),
            None,
        ),
        Err(error) => Check::fail(
            NAME,
            format!(
                "obtained, but the SAS link could not be fetched: {}",
                crate::error_chain(&error.without_url())
            ),
            None,
        ),
    }
}

/// Local photos: the directory must be writable.
pub fn check_local_dir(dir: &FsPath) -> Check {
    match super::writable(dir) {
        Ok(()) => Check::pass("photos", format!("{} is writable", dir.display())),
        Err(error) => Check::fail(
            "photos",
            format!("cannot write to {}: {error}", dir.display()),
            Some("set PHOTO_DIR (or DATA_DIR) to a writable directory".into()),
        ),
    }
}
