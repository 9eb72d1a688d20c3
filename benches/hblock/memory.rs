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
                    .arg(600_000)
                    .arg("MISSES")
                    .arg(3)
                    .ignore();
            } else {
                pipe.cmd("SET")
                    .arg(format!("st:{i:08}"))
                    .arg(OWNER)
                    .arg("PX")
                    .arg(1_800_000)
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

/// What one kind of key measured at one size.
struct Measured {
    /// used_memory per key.
    memory: f64,
    /// SAVE, warm, fastest of three.
    save: f64,
    /// `DEBUG RELOAD NOSAVE` timed from the client, fastest of three: the
    /// issue's measure (#30). It empties the data set (freeing every key)
    /// and loads the RDB into a process whose allocator is warm.
    reload: f64,
    /// The load alone as Redis logs it ("DB loaded from disk") after a
    /// restart, fastest of three: the bench's earlier measure, a fresh
    /// process with nothing to free.
    restart_load: f64,
    /// FLUSHALL SYNC: the freeing part of a DEBUG RELOAD.
    flush: f64,
}

fn fastest(times: usize, mut once: impl FnMut() -> f64) -> f64 {
    (0..times).map(|_| once()).fold(f64::INFINITY, f64::min)
}

fn timed(c: &mut redis::Connection, args: &[&str]) -> f64 {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let start = Instant::now();
    let _: redis::Value = cmd.query(c).expect(args[0]);
    start.elapsed().as_secs_f64()
}

/// `n` locks (or SET PX keys), each server filled the same way: memory,
/// SAVE, and load measured both ways.
fn measure(server: &mut Server, n: usize, locks: bool) -> Measured {
    let mut c = server.conn();
    let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut c).unwrap();
    let before = info_number(&mut c, "memory", "used_memory");
    fill(&mut c, n, locks);
    let after = info_number(&mut c, "memory", "used_memory");
    // The fastest of a few SAVEs and loads (one each at 10M): a single one
    // swings by +-15% on this shared machine.
    let times = if n > 1_000_000 { 1 } else { 3 };
    let save = fastest(times, || timed(&mut c, &["SAVE"]));
    let reload = fastest(times, || timed(&mut c, &["DEBUG", "RELOAD", "NOSAVE"]));
    drop(c);
    let restart_load = fastest(times, || {
        server.crash_and_restart();
        let keys: i64 = redis::cmd("DBSIZE").query(&mut server.conn()).unwrap();
        assert_eq!(keys as usize, n, "all keys reloaded");
        load_seconds(server)
    });
    let flush = timed(&mut server.conn(), &["FLUSHALL", "SYNC"]);
    Measured {
        memory: (after - before) / n as f64,
        save,
        reload,
        restart_load,
        flush,
    }
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
    let (lock_usage, set_usage) = one_of_each(&mut server.conn());
    let mut rows = vec![row(
        "MEMORY USAGE of one held lock (Redis)",
        "bytes",
        lock_usage,
        set_usage,
        Some(1.5),
    )];
    rows.extend(valkey(if quick { 20_000 } else { 100_000 }));
    for &n in sizes {
        rows.extend(at_size(&mut server, n));
    }
    rows
}

/// The Valkey 9.1 binary (scripts/server-bin.sh valkey9), if there is one.
fn valkey9() -> Option<String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/server-bin.sh");
    let out = std::process::Command::new(script)
        .arg("valkey9")
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

/// MEMORY USAGE and used_memory per key on Valkey 9.1, which embeds the
/// key (and a string's value and expiry) in the key's object: a module
/// value stays a separate allocation (see docs/performance.md).
fn valkey(n: usize) -> Vec<Row> {
    let Some(binary) = valkey9() else {
        println!("(no Valkey 9.1 binary: scripts/server-bin.sh valkey9 failed; its rows skipped)");
        return Vec::new();
    };
    let server = Server::with(Options::default().binary(&binary));
    let mut c = server.conn();
    let version = crate::support::info_field(&mut c, "server", "valkey_version")
        .or_else(|| crate::support::info_field(&mut c, "server", "redis_version"))
        .unwrap_or_else(|| "?".into());
    let (lock, set) = one_of_each(&mut c);
    drop(c);
    let mut rows = vec![row(
        &format!("MEMORY USAGE of one held lock (Valkey {version})"),
        "bytes",
        lock,
        set,
        Some(1.5),
    )];
    let per_key = |locks: bool| {
        let mut c = server.conn();
        let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut c).unwrap();
        let before = info_number(&mut c, "memory", "used_memory");
        fill(&mut c, n, locks);
        (info_number(&mut c, "memory", "used_memory") - before) / n as f64
    };
    let (lock_mem, set_mem) = (per_key(true), per_key(false));
    rows.push(row(
        &format!(
            "used_memory per held lock, {}k locks (Valkey {version})",
            n / 1000
        ),
        "bytes",
        lock_mem,
        set_mem,
        Some(1.5),
    ));
    rows
}

/// MEMORY USAGE of one held lock and of one SET PX key, 17-byte owner.
fn one_of_each(c: &mut redis::Connection) -> (f64, f64) {
    let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("lk:00000000")
        .arg(OWNER)
        .arg("INTERVAL")
        .arg(600_000)
        .arg("MISSES")
        .arg(3)
        .query(c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("st:00000000")
        .arg(OWNER)
        .arg("PX")
        .arg(1_800_000)
        .query(c)
        .unwrap();
    let usage = |c: &mut redis::Connection, key: &str| -> f64 {
        redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query::<i64>(c)
            .unwrap() as f64
    };
    (usage(c, "lk:00000000"), usage(c, "st:00000000"))
}

/// used_memory, SAVE and load of `n` locks against `n` SET PX keys.
fn at_size(server: &mut Server, n: usize) -> Vec<Row> {
    let lock = measure(server, n, true);
    let set = measure(server, n, false);
    let count = format!("{}k", n / 1000);
    let per_second = |seconds: f64| n as f64 / seconds;
    vec![
        row(
            &format!("used_memory per held lock, {count} locks"),
            "bytes",
            lock.memory,
            set.memory,
            Some(1.5),
        ),
        row(
            &format!("SAVE of {count} locks (warm, fastest of 3)"),
            "s",
            lock.save,
            set.save,
            Some(1.3),
        ),
        row(
            &format!("DEBUG RELOAD NOSAVE of {count} locks (issue #30's load)"),
            "s",
            lock.reload,
            set.reload,
            Some(1.5),
        ),
        row(
            &format!("FLUSHALL SYNC of {count} locks (DEBUG RELOAD's freeing)"),
            "s",
            lock.flush,
            set.flush,
            None,
        ),
        row(
            &format!("RDB load of {count} locks (restart, as logged)"),
            "s",
            lock.restart_load,
            set.restart_load,
            Some(1.5),
        ),
        Row {
            name: format!("locks loaded per second, {count} (restart, as logged)"),
            unit: "keys/s",
            hblock: per_second(lock.restart_load),
            baseline_name: "SET key owner PX".into(),
            baseline: per_second(set.restart_load),
            goal: Some((
                ">= 1M/s".into(),
                per_second(lock.restart_load) >= 1_000_000.0,
            )),
        },
    ]
}
