//! A TCP relay between the app and PostgreSQL that counts round trips: a "turn" is the server
//! answering after the client has sent something, so statements pipelined together are one
//! turn and a ping before or after a query is one more. It also keeps what the client sent,
//! to look for words such as `BEGIN`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    turns: AtomicU64,
    sent: Mutex<Vec<u8>>,
}

pub struct Relay {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, shared.clone()));
            }
        });
        Self { addr, counts, task }
    }

    /// Turns counted since the last reset.
    pub fn turns(&self) -> u64 {
        self.counts.turns.load(Ordering::SeqCst)
    }

    /// Forgets the turns and the bytes seen so far.
    pub fn reset(&self) {
        self.counts.turns.store(0, Ordering::SeqCst);
        self.counts.sent.lock().unwrap().clear();
    }

    /// Whether the client sent `word` since the last reset.
    pub fn client_sent(&self, word: &str) -> bool {
        let sent = self.counts.sent.lock().unwrap();
        sent.windows(word.len()).any(|w| w == word.as_bytes())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which side spoke last on one connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

async fn relay(client: TcpStream, server: TcpStream, counts: Arc<Counts>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let last = Arc::new(Mutex::new(Side::Server));
    let upstream = {
        let (last, counts) = (last.clone(), counts.clone());
        async move {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n) = client_read.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                *last.lock().unwrap() = Side::Client;
                counts.sent.lock().unwrap().extend_from_slice(&buffer[..n]);
                if server_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        }
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = server_read.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            {
                let mut last = last.lock().unwrap();
                if *last == Side::Client {
                    counts.turns.fetch_add(1, Ordering::SeqCst);
                }
                *last = Side::Server;
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
