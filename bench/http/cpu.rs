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

/// CPU time by process group, in clock ticks.
#[derive(Default, Clone)]
struct Ticks {
    app: u64,
    postgres: u64,
    this_process: u64,
    children: u64,
    machine: u64,
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports process times in USER_HZ, 100 on every supported architecture.
    100.0
}

fn process_ticks(stat: &str) -> Option<(String, u64)> {
    // "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after "state".
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let own = field(11)? + field(12)?;
    // PostgreSQL's backends exit with their connection (pgbench's at the end of its run): what
    // they spent is then in the postmaster's reaped-children times (cutime, cstime).
    let reaped = if comm == "postgres" {
        field(13)? + field(14)?
    } else {
        0
    };
    Some((comm, own + reaped))
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
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((comm, ticks)) = process_ticks(&stat) {
                if pid == me {
                    this_process = ticks;
                } else {
                    *by_comm.entry(comm).or_default() += ticks;
                }
            }
        }
    }
    // cutime and cstime (fields 16 and 17): the reaped children, that is the load generators.
    let children = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let close = stat.rfind(')')?;
            let fields: Vec<u64> = stat[close + 2..]
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            Some(fields.get(13)? + fields.get(14)?)
        })
        .unwrap_or(0);
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

/// Runs `load` (which returns requests per second over `seconds`) and reports where the CPU went.
pub fn measure<T>(
    seconds: u64,
    load: impl FnOnce() -> T,
    per_second: impl Fn(&T) -> f64,
) -> (T, CpuPerRequest) {
    let before = snapshot();
    let result = load();
    let after = snapshot();
    let requests = (per_second(&result) * seconds as f64).max(1.0);
    let micros =
        |b: u64, a: u64| a.saturating_sub(b) as f64 / clock_ticks_per_second() * 1e6 / requests;
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
