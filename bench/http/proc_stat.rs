//! Process CPU times from /proc/<pid>/stat, read here because no crate reports them per
//! process by command name; shared by bench/http (cpu.rs) and bench/telemetry.

/// Linux reports process times in USER_HZ, 100 on every supported architecture.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// A `/proc/<pid>/stat` line: the command name and the numeric fields after it ("pid (comm)
/// state ppid ..."; comm may hold spaces and parentheses, so it ends at the last ')'). Index 0
/// is field 4 of the line (ppid): utime, stime, cutime, cstime are 10..=13.
fn parse_stat(stat: &str) -> Option<(String, Vec<u64>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let numbers = stat[close + 2..]
        .split_whitespace()
        .skip(1) // state, a letter
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((comm, numbers))
}

pub fn read_stat(pid: &str) -> Option<(String, Vec<u64>)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime (`reaped`: + cutime + cstime, the children it has waited for).
pub fn ticks(numbers: &[u64], reaped: bool) -> u64 {
    let own = numbers.get(10..12).map_or(0, |t| t.iter().sum());
    let children = numbers.get(12..14).map_or(0, |t| t.iter().sum());
    if reaped { own + children } else { own }
}

/// The CPU time process `pid` has used so far (user + system).
#[allow(dead_code)] // the telemetry benchmark's; bench/http reads every process at once
pub fn process_cpu(pid: u32) -> std::time::Duration {
    let ticks = read_stat(&pid.to_string()).map_or(0, |(_, numbers)| ticks(&numbers, false));
    std::time::Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND)
}
