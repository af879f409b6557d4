//! PostgreSQL at a distance: a throwaway cluster reached over a link with a set round-trip
//! time, as App Service reaches a Flexible Server in its region (about 1 ms).
//!
//! Where the kernel has netem, the link is a veth pair into a network namespace holding the
//! cluster, with `tc qdisc … netem delay` on both ends (this machine's loopback and other
//! interfaces are not touched). Where it has not (`CONFIG_NET_SCH_NETEM` unset, as on the VM
//! this was written on), a relay on loopback holds every chunk for half the round trip in each
//! direction: written here because no packaged tool does (toxiproxy is not in the
//! registries); OS threads and `thread::sleep`, since tokio's timers count whole milliseconds.
//! Pipelined bytes stay pipelined: each chunk is delayed, not each exchange serialised.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::cluster::Cluster;

/// A cluster behind a slow link; clients connect to `host:port`.
pub struct Distant {
    pub cluster: Cluster,
    pub host: String,
    pub port: u16,
    pub how: String,
    /// Kept for their `Drop`: the namespace is removed, the relay stopped.
    _namespace: Option<Namespace>,
    _relay: Option<DelayRelay>,
}

impl Distant {
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/{database}?sslmode=disable",
            self.host, self.port
        )
    }
}

/// A cluster `rtt` away; `None` without PostgreSQL's server binaries.
pub fn distant_cluster(rtt: Duration) -> Option<Distant> {
    if let Some(namespace) = Namespace::with_netem(rtt / 2) {
        let host = namespace.inside.clone();
        let cluster = Cluster::start(&host, Some(&namespace.name))?;
        let port = cluster.port;
        return Some(Distant {
            cluster,
            host,
            port,
            how: format!(
                "veth pair into network namespace {} with netem delay {:?} each way",
                namespace.name,
                rtt / 2
            ),
            _namespace: Some(namespace),
            _relay: None,
        });
    }
    let cluster = Cluster::start("127.0.0.1", None)?;
    let relay = DelayRelay::start(SocketAddr::from(([127, 0, 0, 1], cluster.port)), rtt / 2);
    Some(Distant {
        host: "127.0.0.1".into(),
        port: relay.addr.port(),
        how: format!(
            "no netem in this kernel: a relay on loopback delaying each chunk {:?} each way",
            rtt / 2
        ),
        cluster,
        _namespace: None,
        _relay: Some(relay),
    })
}

/// A network namespace joined to this one by a veth pair with netem on both ends.
struct Namespace {
    name: String,
    outside_if: String,
    inside: String,
}

impl Namespace {
    fn with_netem(one_way: Duration) -> Option<Self> {
        let id = std::process::id() % 100_000;
        let namespace = Self {
            name: format!("rrbench{id}"),
            outside_if: format!("rrb{id}a"),
            inside: "10.213.0.2".into(),
        };
        let inside_if = format!("rrb{id}b");
        let delay = format!("{}us", one_way.as_micros());
        let ns = namespace.name.as_str();
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "netns", "add", ns],
            vec![
                "ip",
                "link",
                "add",
                &namespace.outside_if,
                "type",
                "veth",
                "peer",
                "name",
                &inside_if,
            ],
            vec!["ip", "link", "set", &inside_if, "netns", ns],
            vec![
                "ip",
                "addr",
                "add",
                "10.213.0.1/30",
                "dev",
                &namespace.outside_if,
            ],
            vec!["ip", "link", "set", &namespace.outside_if, "up"],
            vec![
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "addr",
                "add",
                "10.213.0.2/30",
                "dev",
                &inside_if,
            ],
            vec![
                "ip", "netns", "exec", ns, "ip", "link", "set", &inside_if, "up",
            ],
            vec!["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
            vec![
                "tc",
                "qdisc",
                "add",
                "dev",
                &namespace.outside_if,
                "root",
                "netem",
                "delay",
                &delay,
            ],
            vec![
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", &inside_if, "root",
                "netem", "delay", &delay,
            ],
        ];
        for step in steps {
            let ok = Command::new(step[0])
                .args(&step[1..])
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                // Dropping removes whatever was made.
                return None;
            }
        }
        Some(namespace)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.outside_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Forwards connections to `upstream`, holding every chunk `one_way` in each direction.
pub struct DelayRelay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DelayRelay {
    pub fn start(upstream: SocketAddr, one_way: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    one_way,
                );
                pipe(server, client, one_way);
            }
        });
        Self { addr, stop }
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0
                || chunks
                    .send((Instant::now() + delay, buffer[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        // Sleeps end within microseconds rather than the default 50 µs slack.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
        for (at, chunk) in due {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
