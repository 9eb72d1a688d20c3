//! Memory and persistence of many held locks against `SET key owner PX` keys
//! with the same key-name length and the same 17-byte owner.

use crate::stats::{info_number, Row};
use crate::support::{Options, Server};
use std::time::Instant;

const OWNER: &str = "owner-17-bytes-xx";

fn fill(c: &mut redis::Connection, n: usize, locks: bool) {
    for start in (0..n).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 10_000).min(n) {
            if locks {
                pipe.cmd("HBLOCK.ACQUIRE")
                    .arg(format!("lk:{i:08}"))
                    .arg(OWNER)
                    .arg("INTERVAL")
                    .arg(86_400_000)
                    .ignore();
            } else {
                pipe.cmd("SET")
                    .arg(format!("st:{i:08}"))
                    .arg(OWNER)
                    .arg("PX")
                    .arg(86_400_000)
                    .ignore();
            }
        }
        let () = pipe.query(c).expect("fill");
    }
}

/// Seconds Redis reported for loading the RDB at its last start.
fn load_seconds(server: &Server) -> f64 {
    server
        .log()
        .lines()
        .rev()
        .filter_map(|l| l.split("DB loaded from disk: ").nth(1))
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// (used_memory per key, SAVE seconds, load seconds) for `n` keys.
fn measure(server: &mut Server, n: usize, locks: bool) -> (f64, f64, f64) {
    let mut c = server.conn();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let before = info_number(&mut c, "memory", "used_memory");
    fill(&mut c, n, locks);
    let after = info_number(&mut c, "memory", "used_memory");
    // The fastest of a few SAVEs and loads (one each at 10M): a single one
    // swings by +-15% on this shared machine.
    let saves = if n > 1_000_000 { 1 } else { 3 };
    let save = (0..saves)
        .map(|_| {
            let start = Instant::now();
            let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let load = (0..saves)
        .map(|_| {
            server.crash_and_restart();
            let keys: i64 = redis::cmd("DBSIZE").query(&mut server.conn()).unwrap();
            assert_eq!(keys as usize, n, "all keys reloaded");
            load_seconds(server)
        })
        .fold(f64::INFINITY, f64::min);
    ((after - before) / n as f64, save, load)
}

fn row(name: &str, unit: &'static str, hblock: f64, baseline: f64, goal: Option<f64>) -> Row {
    Row {
        name: name.into(),
        unit,
        hblock,
        baseline_name: "SET key owner PX".into(),
        baseline,
        goal: goal.map(|g| (format!("<= {g}x"), hblock / baseline <= g)),
    }
}

/// `sizes`: how many locks (and SET PX keys) to measure memory, SAVE and
/// load with: 100k (QUICK), 1M, and with FULL=1 also 10M.
pub fn run(quick: bool, full: bool) -> Vec<Row> {
    let sizes: &[usize] = match (quick, full) {
        (true, _) => &[100_000],
        (false, false) => &[1_000_000],
        (false, true) => &[1_000_000, 10_000_000],
    };
    let mut server = Server::with(Options::default());
    let mut c = server.conn();
    let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("lk:00000000")
        .arg(OWNER)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("st:00000000")
        .arg(OWNER)
        .arg("PX")
        .arg(30000)
        .query(&mut c)
        .unwrap();
    let usage = |c: &mut redis::Connection, key: &str| -> f64 {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query::<i64>(c)
            .unwrap() as f64
    };
    let (lock_usage, set_usage) = (usage(&mut c, "lk:00000000"), usage(&mut c, "st:00000000"));
    let mut rows = vec![row(
        "MEMORY USAGE of one held lock",
        "bytes",
        lock_usage,
        set_usage,
        Some(1.5),
    )];
    for &n in sizes {
        rows.extend(at_size(&mut server, n));
    }
    rows
}

/// used_memory, SAVE and load of `n` locks against `n` SET PX keys.
fn at_size(server: &mut Server, n: usize) -> Vec<Row> {
    let (lock_mem, lock_save, lock_load) = measure(server, n, true);
    let (set_mem, set_save, set_load) = measure(server, n, false);
    let count = format!("{}k", n / 1000);
    vec![
        row(
            &format!("used_memory per held lock, {count} locks"),
            "bytes",
            lock_mem,
            set_mem,
            Some(1.5),
        ),
        row(
            &format!("SAVE of {count} locks"),
            "s",
            lock_save,
            set_save,
            Some(1.3),
        ),
        row(
            &format!("RDB load of {count} locks"),
            "s",
            lock_load,
            set_load,
            Some(1.5),
        ),
    ]
}
