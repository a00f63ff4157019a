//! What the benchmarks measure with: a process's memory and CPU time from /proc, and percentiles.

use std::{path::PathBuf, time::Duration};

/// The number after `name` on a benchmark's command line (`cargo bench … -- --streams 200`), else `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Where benchmarks find the release binaries: `$STORE_PLATFORM_BIN_DIR`, else the workspace's `target/release`
/// (`make bench…` builds them).
pub fn release_bin_dir() -> PathBuf {
    std::env::var_os("STORE_PLATFORM_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::process::target_dir().join("release"))
}

/// A process's memory and CPU time, read from /proc.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB.
    pub peak_kib: u64,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
}

/// The usage of process `pid` (zeros if it is gone).
pub fn process_usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime, in clock ticks: 100 per second on Linux.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    Usage {
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
        cpu_seconds: ticks / 100.0,
    }
}

/// The `p` quantile (0.0 to 1.0) of `sorted`, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// One line: min, median, p95, p99 and max of `values`.
pub fn summary(label: &str, mut values: Vec<Duration>) -> String {
    values.sort();
    format!(
        "{label:<38} n {:>7}  min {:>8.1?}  median {:>8.1?}  p95 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
        values.len(),
        percentile(&values, 0.0),
        percentile(&values, 0.5),
        percentile(&values, 0.95),
        percentile(&values, 0.99),
        percentile(&values, 1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn this_process_has_memory_and_cpu() {
        let usage = process_usage(std::process::id());
        assert!(
            usage.rss_kib > 0 && usage.peak_kib >= usage.rss_kib,
            "{usage:?}"
        );
        assert_eq!(process_usage(u32::MAX), Usage::default());
    }
}
