//! Percentiles, INFO fields and the result rows.

use std::time::{Duration, Instant};

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// (p50, p99, max) of samples.
pub fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let max = samples.last().copied().unwrap_or(f64::NAN);
    (percentile(&samples, 50.0), percentile(&samples, 99.0), max)
}

pub fn info_number(c: &mut redis::Connection, section: &str, field: &str) -> f64 {
    let info: String = redis::cmd("INFO").arg(section).query(c).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Spins (one INFO round trip at a time, no sleeping) until `n` clients wait.
pub fn wait_for_waiters(c: &mut redis::Connection, key: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while crate::support::info_int(c, key, "waiters") != n {
        assert!(Instant::now() < deadline, "{key}: never {n} waiters");
    }
}

/// One line of the result table: what hblock did, what the baseline did.
pub struct Row {
    pub name: String,
    pub unit: &'static str,
    pub hblock: f64,
    pub baseline_name: String,
    pub baseline: f64,
    /// The goal as text, and whether it was met (None: no goal).
    pub goal: Option<(String, bool)>,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.hblock / self.baseline
    }
}
