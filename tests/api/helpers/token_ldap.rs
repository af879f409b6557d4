//! Token validation for the throwaway PostgreSQL cluster, the way Azure Database for
//! PostgreSQL validates Entra tokens: at sign-in, any token minted for the role that has not
//! expired is accepted, an expired or unknown one is refused.
//!
//! PostgreSQL delegates the check through its `ldap` auth method (simple bind) to this tiny LDAP
//! responder. Written by hand because no maintained crate provides an LDAP *server*, and only
//! one message pair of the protocol is needed: BindRequest in, BindResponse out. (A role
//! password set with `ALTER ROLE ... VALID UNTIL` cannot emulate this: a role has one password,
//! so minting a new token would instantly invalidate the previous, still-valid one.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The DN PostgreSQL binds as: `cn=<role>,dc=azure`.
pub const LDAP_PREFIX: &str = "cn=";
pub const LDAP_SUFFIX: &str = ",dc=azure";

#[derive(Default)]
struct Registry {
    /// token -> (role, expiry)
    tokens: Mutex<HashMap<String, (String, OffsetDateTime)>>,
    /// Binds refused so far (an unknown, expired or other role's token).
    refused: AtomicU64,
}

#[derive(Clone)]
pub struct TokenLdap {
    pub port: u16,
    registry: Arc<Registry>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

impl TokenLdap {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let registry = Arc::new(Registry::default());
        let shared = registry.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let registry = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &registry).await;
                });
            }
        });
        Self {
            port,
            registry,
            server: Arc::new(server),
        }
    }

    /// Makes `token` valid for `role` until `expires`.
    pub fn accept(&self, role: &str, token: &str, expires: OffsetDateTime) {
        self.registry
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_owned(), (role.to_owned(), expires));
    }

    pub fn refused(&self) -> u64 {
        self.registry.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TokenLdap {
    fn drop(&mut self) {
        if Arc::strong_count(&self.server) == 1 {
            self.server.abort();
        }
    }
}

fn check(registry: &Registry, dn: &str, password: &str) -> bool {
    let role = dn
        .strip_prefix(LDAP_PREFIX)
        .and_then(|r| r.strip_suffix(LDAP_SUFFIX));
    let ok = match (role, registry.tokens.lock().unwrap().get(password)) {
        (Some(role), Some((token_role, expires))) => {
            role == token_role && *expires > OffsetDateTime::now_utc()
        }
        _ => false,
    };
    if !ok {
        registry.refused.fetch_add(1, Ordering::SeqCst);
    }
    ok
}

/// Reads one BER element: (tag, contents).
async fn read_element(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let tag = stream.read_u8().await?;
    let first = stream.read_u8().await?;
    let len = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let mut len = 0usize;
        for _ in 0..(first & 0x7F) {
            len = (len << 8) | usize::from(stream.read_u8().await?);
        }
        len
    };
    if len > 1 << 20 {
        return Err(std::io::Error::other("LDAP message too large"));
    }
    let mut contents = vec![0; len];
    stream.read_exact(&mut contents).await?;
    Ok((tag, contents))
}

/// Splits BER contents into (tag, value) elements.
fn elements(mut bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let tag = bytes[0];
        let (len, header) = if bytes[1] & 0x80 == 0 {
            (usize::from(bytes[1]), 2)
        } else {
            let n = usize::from(bytes[1] & 0x7F);
            if bytes.len() < 2 + n {
                break;
            }
            (
                bytes[2..2 + n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
                2 + n,
            )
        };
        if bytes.len() < header + len {
            break;
        }
        out.push((tag, &bytes[header..header + len]));
        bytes = &bytes[header + len..];
    }
    out
}

fn bind_response(message_id: &[u8], success: bool) -> Vec<u8> {
    let result_code = if success { 0 } else { 49 }; // invalidCredentials
    let mut op = vec![0x0A, 0x01, result_code, 0x04, 0x00, 0x04, 0x00];
    op.splice(0..0, [0x61, op.len() as u8]);
    let mut message = vec![0x02, message_id.len() as u8];
    message.extend_from_slice(message_id);
    message.extend_from_slice(&op);
    message.splice(0..0, [0x30, message.len() as u8]);
    message
}

async fn serve(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    loop {
        let (tag, contents) = read_element(&mut stream).await?;
        if tag != 0x30 {
            return Ok(());
        }
        let parts = elements(&contents);
        let (Some((0x02, message_id)), Some((op_tag, op))) = (parts.first(), parts.get(1)) else {
            return Ok(());
        };
        match op_tag {
            // BindRequest: version, name, simple password [0].
            0x60 => {
                let fields = elements(op);
                let dn = fields
                    .get(1)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                let password = fields
                    .get(2)
                    .filter(|(tag, _)| *tag == 0x80)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                let ok = check(registry, &dn, &password);
                stream.write_all(&bind_response(message_id, ok)).await?;
            }
            // UnbindRequest or anything else: done.
            _ => return Ok(()),
        }
    }
}
