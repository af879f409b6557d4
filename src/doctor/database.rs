//! The database, layer by layer: DNS, TCP, TLS, sign-in, then migrations and privileges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fixes::AzureContext;
use super::{Check, Report};
use crate::config::{ExposeSecret, PostgresSettings};
use crate::db::postgres_connect_options;
use crate::identity::TokenSource;

const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn check_postgres(
    pg: &PostgresSettings,
    tokens: Option<&TokenSource>,
    context: &AzureContext,
    report: &mut Report,
) {
    let Some(addr) = dns(pg, context, report).await else {
        report.skip(
            &["TCP", "TLS", "sign-in", "migrations"],
            "the host does not resolve",
        );
        return;
    };
    if !report.push(tcp(pg, addr, context).await) {
        report.skip(&["TLS", "sign-in", "migrations"], "no TCP connection");
        return;
    }
    if !report.push(tls(pg, addr).await) {
        report.skip(&["sign-in", "migrations"], "TLS failed");
        return;
    }
    let password = match (&pg.password, tokens) {
        (Some(password), _) => Some(password.expose_secret().to_owned()),
        // A local trust or peer setup: no password at all.
        (None, _) if !pg.uses_entra_token() => None,
        (None, Some(tokens)) => match tokens.token().await {
            Ok(token) => Some(token.secret().to_owned()),
            Err(error) => {
                report.push(Check::fail("sign-in", error.to_string(), None));
                report.skip(&["migrations"], "not signed in");
                return;
            }
        },
        (None, None) => {
            report.skip(&["sign-in"], "no token for PostgreSQL");
            report.skip(&["migrations"], "not signed in");
            return;
        }
    };
    let (check, connection) = sign_in(pg, password.as_deref(), context).await;
    report.push(check);
    match connection {
        Some(mut connection) => {
            report.push(super::migrations::check(&mut connection, pg, context).await);
            let _ = connection.close().await;
        }
        None => report.skip(&["migrations"], "not signed in"),
    }
}

async fn dns(
    pg: &PostgresSettings,
    context: &AzureContext,
    report: &mut Report,
) -> Option<SocketAddr> {
    let lookup = tokio::net::lookup_host((pg.host.as_str(), pg.port));
    let result = tokio::time::timeout(NETWORK_TIMEOUT, lookup).await;
    let addrs: Vec<SocketAddr> = match result {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(error)) => {
            report.push(Check::fail(
                "DNS",
                format!("{} does not resolve: {error}", pg.host),
                Some(format!(
                    "check DBHOST: the server's host name is\naz postgres flexible-server show --resource-group {} --name <server-name> --query fullyQualifiedDomainName --output tsv",
                    context.resource_group
                )),
            ));
            return None;
        }
        Err(_) => {
            report.push(Check::fail(
                "DNS",
                format!(
                    "no answer for {} within {} s",
                    pg.host,
                    NETWORK_TIMEOUT.as_secs()
                ),
                None,
            ));
            return None;
        }
    };
    let Some(first) = addrs.first().copied() else {
        report.push(Check::fail(
            "DNS",
            format!("{} has no address", pg.host),
            None,
        ));
        return None;
    };
    let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    report.push(Check::pass(
        "DNS",
        format!("{} → {}", pg.host, shown.join(", ")),
    ));
    Some(first)
}

async fn tcp(pg: &PostgresSettings, addr: SocketAddr, context: &AzureContext) -> Check {
    let started = Instant::now();
    match tokio::time::timeout(NETWORK_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Check::pass(
            "TCP",
            format!(
                "connected to {addr} in {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Ok(Err(error)) => Check::fail(
            "TCP",
            format!("cannot connect to {addr}: {error}"),
            Some(context.postgres_firewall(&pg.host)),
        ),
        Err(_) => Check::fail(
            "TCP",
            format!(
                "no answer from {addr} within {} s (a firewall drops the packets)",
                NETWORK_TIMEOUT.as_secs()
            ),
            Some(context.postgres_firewall(&pg.host)),
        ),
    }
}

/// Asks the server for TLS (PostgreSQL's `SSLRequest`) and, in the verifying modes, completes
/// a handshake checking the certificate against the same roots the app uses (webpki roots, or
/// `DBSSLROOTCERT`). Written here because sqlx exposes no TLS-only probe: its connect mixes
/// TLS and sign-in failures.
async fn tls(pg: &PostgresSettings, addr: SocketAddr) -> Check {
    let mode = ssl_mode_name(pg.ssl_mode);
    if matches!(pg.ssl_mode, PgSslMode::Disable) {
        return Check::pass("TLS", "not used (DBSSLMODE=disable)");
    }
    let probe = async {
        let mut stream = TcpStream::connect(addr).await?;
        // Length 8, then the SSLRequest code 80877103.
        stream
            .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .await?;
        let answer = stream.read_u8().await?;
        Ok::<_, std::io::Error>((stream, answer))
    };
    let (stream, answer) = match tokio::time::timeout(NETWORK_TIMEOUT, probe).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => {
            return Check::fail("TLS", format!("asking for TLS failed: {error}"), None);
        }
        Err(_) => return Check::fail("TLS", "the server did not answer the TLS request", None),
    };
    let required = !matches!(pg.ssl_mode, PgSslMode::Allow | PgSslMode::Prefer);
    if answer != b'S' {
        return if required {
            Check::fail(
                "TLS",
                format!("the server does not offer TLS, and DBSSLMODE is {mode}"),
                Some(
                    "enable TLS on the server, or (only on a trusted network) set DBSSLMODE=prefer"
                        .into(),
                ),
            )
        } else {
            Check::pass(
                "TLS",
                format!(
                    "the server offers no TLS; the connection is unencrypted (DBSSLMODE={mode})"
                ),
            )
        };
    }
    if !matches!(pg.ssl_mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull) {
        return Check::pass(
            "TLS",
            format!("offered; the certificate is not verified (DBSSLMODE={mode})"),
        );
    }
    match verified_handshake(pg, stream).await {
        Ok(version) => Check::pass(
            "TLS",
            format!("{version}, certificate for {} verified (DBSSLMODE={mode})", pg.host),
        ),
        Err(error) => Check::fail(
            "TLS",
            format!("the server's certificate is not trusted: {error}"),
            Some("on Azure the certificate chains to public roots; elsewhere set DBSSLROOTCERT to the CA certificate file".into()),
        ),
    }
}

/// The mode as `DBSSLMODE` spells it.
pub(super) fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

async fn verified_handshake(pg: &PostgresSettings, stream: TcpStream) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &pg.ssl_root_cert {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let certificates = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("reading DBSSLROOTCERT {}: {e}", path.display()))?;
            for certificate in certificates {
                let certificate = certificate.map_err(|e| format!("DBSSLROOTCERT: {e}"))?;
                roots
                    .add(certificate)
                    .map_err(|e| format!("DBSSLROOTCERT: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(pg.host.clone()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = connector.connect(name, stream);
    let tls = tokio::time::timeout(NETWORK_TIMEOUT, handshake)
        .await
        .map_err(|_| "the TLS handshake did not finish".to_owned())?
        .map_err(|e| e.to_string())?;
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1."))
        .unwrap_or_else(|| "TLS".into());
    Ok(version)
}

async fn sign_in(
    pg: &PostgresSettings,
    password: Option<&str>,
    context: &AzureContext,
) -> (Check, Option<PgConnection>) {
    let options = postgres_connect_options(pg, password);
    let connect = PgConnection::connect_with(&options);
    let error = match tokio::time::timeout(SIGN_IN_TIMEOUT, connect).await {
        Ok(Ok(mut connection)) => {
            let version: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(&mut connection)
                .await
                .unwrap_or_else(|_| "?".into());
            let check = Check::pass(
                "sign-in",
                format!(
                    "signed in as {} to {} (PostgreSQL {version})",
                    pg.user, pg.database
                ),
            );
            return (check, Some(connection));
        }
        Ok(Err(error)) => error,
        Err(_) => {
            let check = Check::fail(
                "sign-in",
                format!("no answer within {} s", SIGN_IN_TIMEOUT.as_secs()),
                None,
            );
            return (check, None);
        }
    };
    let code = match &error {
        sqlx::Error::Database(e) => e.code().map(|c| c.into_owned()),
        _ => None,
    };
    // The server's own words; sqlx's chain repeats them.
    let said = match &error {
        sqlx::Error::Database(e) => e.message().to_owned(),
        other => crate::error_chain(other),
    };
    let detail = format!("as {} to {}: {said}", pg.user, pg.database);
    let fix = match code.as_deref() {
        Some("28P01" | "28000") if pg.uses_entra_token() => {
            Some(context.postgres_principal(&pg.host, &pg.user, &pg.database))
        }
        Some("28P01" | "28000") => {
            Some("check DBPASS (or leave it unset and set DATABASE_AUTH=entra to sign in with the app's identity)".into())
        }
        Some("3D000") => Some(context.postgres_database(&pg.host, &pg.database)),
        _ => None,
    };
    (
        Check::fail("sign-in", format!("refused {detail}"), fix),
        None,
    )
}
