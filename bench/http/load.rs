//! Loads and their figures: wrk against the app, pgbench against PostgreSQL.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Throughput and latency of one load.
#[derive(Clone, Copy, Default, Debug)]
pub struct Load {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// A statement and its parameters, all integers.
#[derive(Clone, Debug)]
pub struct Floor {
    pub sql: &'static str,
    pub params: Vec<i64>,
}

pub fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

/// wrk's latency figures ("812.00us", "1.52ms", "2.01s").
fn wrk_duration(text: &str) -> Duration {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        panic!("wrk latency {text:?}")
    };
    Duration::from_secs_f64(number.parse::<f64>().expect("wrk latency") * scale)
}

pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `url` loaded by wrk with `connections` connections (two threads, or one for a single
/// connection) for `seconds`.
pub fn wrk(url: &str, connections: u32, seconds: u64) -> Load {
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .args(["--latency", "--timeout", "10s", url])
        .output()
        .expect("running wrk (bash scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed on {url}:\n{text}");
    assert!(
        !text.contains("Non-2xx or 3xx"),
        "{url} answered errors under load:\n{text}"
    );
    let mut load = Load::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => load.p50 = wrk_duration(v),
            (Some("99%"), Some(v)) => load.p99 = wrk_duration(v),
            (Some("Requests/sec:"), Some(v)) => load.per_second = v.parse().expect("wrk req/s"),
            _ => {}
        }
    }
    assert!(load.per_second > 0.0, "no requests/s from wrk:\n{text}");
    load
}

/// The statement as a pgbench script: `$n` become pgbench variables, sent as parameters of a
/// prepared statement (`-M prepared`), as the app sends them.
fn pgbench_script(floor: &Floor) -> String {
    let mut script = String::new();
    for (i, value) in floor.params.iter().enumerate() {
        writeln!(script, "\\set p{} {value}", i + 1).unwrap();
    }
    let mut sql = floor.sql.to_owned();
    // Highest first, so `$1` does not eat the start of `$10`.
    for i in (1..=floor.params.len()).rev() {
        sql = sql.replace(&format!("${i}"), &format!(":p{i}"));
    }
    writeln!(script, "{sql};").unwrap();
    script
}

/// `floor` run by pgbench with `clients` connections for `seconds`.
pub fn pgbench(
    database_url: &str,
    floor: &Floor,
    clients: u32,
    seconds: u64,
    scratch: &Path,
) -> Load {
    let script = scratch.join("floor.sql");
    std::fs::write(&script, pgbench_script(floor)).unwrap();
    let logs = scratch.join("pgbench-log");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    let output = Command::new("pgbench")
        .current_dir(&logs)
        .args(["-n", "-M", "prepared"])
        .arg(format!("-j{}", clients.clamp(1, 2)))
        .arg(format!("-c{clients}"))
        .arg(format!("-T{seconds}"))
        // A tenth of the transactions logged, for the percentiles.
        .args(["--log", "--sampling-rate", "0.1", "-f"])
        .arg(&script)
        .arg(database_url)
        .output()
        .expect("running pgbench (from PostgreSQL's packages)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let per_second = text
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no tps from pgbench:\n{text}"));
    // Each log line: client, transaction, latency in µs, script, epoch s, µs.
    let mut latencies: Vec<Duration> = std::fs::read_dir(&logs)
        .unwrap()
        .flat_map(|entry| {
            std::fs::read_to_string(entry.unwrap().path())
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| line.split_whitespace().nth(2)?.parse::<u64>().ok())
        .map(Duration::from_micros)
        .collect();
    latencies.sort();
    Load {
        per_second,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

/// One printed row: the load, and beside it its floor and the ratio.
pub fn print_row(name: &str, load: Load, floor: Option<Load>) {
    let mut line = format!(
        "    {name:<26} {:>9.0} req/s  p50 {:>9}  p99 {:>9}",
        load.per_second,
        ms(load.p50),
        ms(load.p99)
    );
    if let Some(floor) = floor {
        write!(
            line,
            "   floor {:>9.0}/s  p50 {:>9}  p99 {:>9}   ratio {:>5.1}%",
            floor.per_second,
            ms(floor.p50),
            ms(floor.p99),
            100.0 * load.per_second / floor.per_second
        )
        .unwrap();
    }
    println!("{line}");
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
