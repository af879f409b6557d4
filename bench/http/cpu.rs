//! Where the CPU goes during a load: the app, PostgreSQL, this benchmark process (the delaying
//! relay when the link is one), the load generator (wrk or pgbench) and anything else on the
//! machine, in CPU microseconds per request. With two cores shared by all of them, this is the
//! profile behind a ratio: a page can reach its floor only if what the app itself spends per
//! request fits beside what the floor's own parts spend.
//!
//! Read from /proc (per-process times by command name; the load generator, which has exited,
//! from this process's reaped children), because no crate reports per-command CPU time.

use std::collections::HashMap;
use std::fmt;

use super::load::Load;
use super::proc_stat::{TICKS_PER_SECOND, read_stat, ticks};

/// CPU time by process group, in clock ticks.
#[derive(Default, Clone)]
struct Ticks {
    app: u64,
    postgres: u64,
    this_process: u64,
    children: u64,
    machine: u64,
}

fn snapshot() -> Ticks {
    let mut by_comm: HashMap<String, u64> = HashMap::new();
    let me = std::process::id().to_string();
    let mut this_process = 0;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            if let Some((comm, numbers)) = read_stat(pid) {
                if pid == me {
                    this_process = ticks(&numbers, false);
                } else {
                    // PostgreSQL's backends exit with their connection (pgbench's at the end of
                    // its run): what they spent is then the postmaster's reaped children's time.
                    let reaped = comm == "postgres";
                    *by_comm.entry(comm).or_default() += ticks(&numbers, reaped);
                }
            }
        }
    }
    // This process's reaped children: the load generators (wrk, pgbench), which have exited.
    let children = read_stat("self").map_or(0, |(_, numbers)| {
        ticks(&numbers, true) - ticks(&numbers, false)
    });
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let cpu = stat.lines().next()?.strip_prefix("cpu ")?.to_owned();
            let fields: Vec<u64> = cpu
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            // user, nice, system (idle and iowait excluded), irq, softirq, steal
            Some(
                fields
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| ![3, 4].contains(i))
                    .map(|(_, v)| v)
                    .sum(),
            )
        })
        .unwrap_or(0);
    Ticks {
        app: by_comm.get("restaurant-revi").copied().unwrap_or(0),
        postgres: by_comm.get("postgres").copied().unwrap_or(0),
        this_process,
        children,
        machine,
    }
}

/// CPU per request of one load, by where it was spent.
#[derive(Clone, Copy, Default, Debug)]
pub struct CpuPerRequest {
    pub app: f64,
    pub postgres: f64,
    pub relay: f64,
    pub load_generator: f64,
    pub other: f64,
}

impl fmt::Display for CpuPerRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPU µs/request: app {:.0}, postgres {:.0}, relay+bench {:.0}, load generator {:.0}, other {:.0}",
            self.app, self.postgres, self.relay, self.load_generator, self.other
        )
    }
}

/// Runs `load` (a load of `seconds`) and reports where the CPU went.
pub fn measure(seconds: u64, load: impl FnOnce() -> Load) -> (Load, CpuPerRequest) {
    let before = snapshot();
    let result = load();
    let after = snapshot();
    let requests = (result.per_second * seconds as f64).max(1.0);
    let micros = |b: u64, a: u64| a.saturating_sub(b) as f64 / TICKS_PER_SECOND * 1e6 / requests;
    let app = micros(before.app, after.app);
    let postgres = micros(before.postgres, after.postgres);
    let relay = micros(before.this_process, after.this_process);
    let load_generator = micros(before.children, after.children);
    let machine = micros(before.machine, after.machine);
    let cpu = CpuPerRequest {
        app,
        postgres,
        relay,
        load_generator,
        other: (machine - app - postgres - relay - load_generator).max(0.0),
    };
    (result, cpu)
}
