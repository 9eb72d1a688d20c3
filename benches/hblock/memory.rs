//! Memory and persistence of many held locks against `SET key owner PX` keys
//! with the same key-name length and the same 17-byte owner.

use crate::stats::{info_number, Row};
use crate::support::{Options, Server};
use std::time::Instant;

const OWNER: &str = "owner-17-bytes-xx";

/// What a server of the memory group holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Held locks (`HBLOCK.ACQUIRE ... INTERVAL 600000 MISSES 3`).
    Lock,
    /// `SET key owner PX 1800000` keys.
    Set,
    /// The floor module's values (`FLOOR.SET key owner`, benches/fixtures/floor.c).
    Floor,
}

fn fill(c: &mut redis::Connection, n: usize, kind: Kind) {
    for start in (0..n).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 10_000).min(n) {
            match kind {
                Kind::Lock => pipe
                    .cmd("HBLOCK.ACQUIRE")
                    .arg(format!("lk:{i:08}"))
                    .arg(OWNER)
                    .arg("INTERVAL")
                    .arg(600_000)
                    .arg("MISSES")
                    .arg(3)
                    .ignore(),
                Kind::Set => pipe
                    .cmd("SET")
                    .arg(format!("st:{i:08}"))
                    .arg(OWNER)
                    .arg("PX")
                    .arg(1_800_000)
                    .ignore(),
                Kind::Floor => pipe
                    .cmd("FLOOR.SET")
                    .arg(format!("fl:{i:08}"))
                    .arg(OWNER)
                    .ignore(),
            };
        }
        let () = pipe.query(c).expect("fill");
    }
}

/// Compiles benches/fixtures/floor.c (the cheapest module data type: what
/// the module API alone costs to save and load a record) with `cc` against
/// the redismodule.h the redis-module crate ships. None, with a note, when
/// either is missing: its rows are then skipped.
fn floor_module() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))?;
    let include = std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|krate| krate.path().join("src/include"))
        .find(|dir| {
            dir.join("redismodule.h").is_file() && dir.to_string_lossy().contains("redis-module-")
        });
    let Some(include) = include else {
        println!("(no redismodule.h in the cargo registry: the floor module's rows skipped)");
        return None;
    };
    let dir = tempfile::tempdir().ok()?;
    let so = dir.path().join("floor.so");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures/floor.c");
    let built = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O2", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&so)
        .arg(&source)
        .status()
        .is_ok_and(|status| status.success());
    if !built {
        println!("(cc could not build benches/fixtures/floor.c: the floor module's rows skipped)");
        return None;
    }
    Some((dir, so))
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
#[derive(Default)]
struct Measured {
    /// used_memory per key.
    memory: f64,
    /// SAVE, warm, fastest of the rounds.
    save: f64,
    /// SAVE again after the reloads (keys laid out in the RDB's order).
    save_after_reload: f64,
    /// SAVE with `rdbcompression no` (after the reloads too): Redis tries LZF on every string
    /// longer than 20 bytes, which a lock's record (~35 bytes with a
    /// 17-byte owner) is and a 17-byte SET value is not.
    save_uncompressed: f64,
    /// `DEBUG RELOAD NOSAVE` timed from the client, fastest of the rounds:
    /// the measure (#30). It empties the data set (freeing every
    /// key) and loads the RDB into a process whose allocator is warm.
    reload: f64,
    /// The load alone as Redis logs it ("DB loaded from disk") after a
    /// restart, fastest of three: the bench's earlier measure, a fresh
    /// process with nothing to free.
    restart_load: f64,
    /// FLUSHALL SYNC: the freeing part of a DEBUG RELOAD.
    flush: f64,
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

fn config_set(c: &mut redis::Connection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c)
        .expect("CONFIG SET");
}

/// Runs `op` on each server in turn, `rounds` times, keeping each one's
/// fastest: every kind of key sees the same moments of a shared machine.
fn interleaved(
    servers: &mut [(&mut Server, Kind)],
    rounds: usize,
    mut op: impl FnMut(&mut redis::Connection) -> f64,
) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; servers.len()];
    for _ in 0..rounds {
        for ((server, _), best) in servers.iter_mut().zip(best.iter_mut()) {
            *best = best.min(op(&mut server.conn()));
        }
    }
    best
}

/// `n` keys of each kind, each on its own server, filled the same way:
/// memory, then SAVE and load measured both ways, the servers taking turns.
fn measure(servers: &mut [(&mut Server, Kind)], n: usize) -> Vec<Measured> {
    let mut out: Vec<Measured> = servers.iter().map(|_| Measured::default()).collect();
    for ((server, kind), m) in servers.iter_mut().zip(out.iter_mut()) {
        let mut c = server.conn();
        let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut c).unwrap();
        let before = info_number(&mut c, "memory", "used_memory");
        fill(&mut c, n, *kind);
        m.memory = (info_number(&mut c, "memory", "used_memory") - before) / n as f64;
    }
    // A single SAVE or load swings by +-15% on this shared machine: the
    // fastest of five (one at 10M) counts, the first (cold) one included.
    let rounds = if n > 1_000_000 { 1 } else { 5 };
    let save = interleaved(servers, rounds, |c| timed(c, &["SAVE"]));
    let reload = interleaved(servers, rounds, |c| {
        timed(c, &["DEBUG", "RELOAD", "NOSAVE"])
    });
    // After a reload the keys sit in memory in the RDB's order, which is
    // the order SAVE walks them: the same SAVE without the cache misses of
    // a keyspace filled over time (a lock is three objects to visit, the
    // key's, Redis's module-value wrapper and its record; a SET PX key one
    // or two).
    let save_after_reload = interleaved(servers, rounds.min(3), |c| timed(c, &["SAVE"]));
    let save_uncompressed = interleaved(servers, rounds.min(3), |c| {
        config_set(c, "rdbcompression", "no");
        let seconds = timed(c, &["SAVE"]);
        config_set(c, "rdbcompression", "yes");
        seconds
    });
    // The RDB left behind is the compressed one the restarts load.
    for (server, _) in servers.iter_mut() {
        timed(&mut server.conn(), &["SAVE"]);
    }
    for (i, (server, _)) in servers.iter_mut().enumerate() {
        let m = &mut out[i];
        m.save = save[i];
        m.reload = reload[i];
        m.save_after_reload = save_after_reload[i];
        m.save_uncompressed = save_uncompressed[i];
        m.restart_load = (0..rounds.min(3))
            .map(|_| {
                server.crash_and_restart();
                let keys: i64 = redis::cmd("DBSIZE").query(&mut server.conn()).unwrap();
                assert_eq!(keys as usize, n, "all keys reloaded");
                load_seconds(server)
            })
            .fold(f64::INFINITY, f64::min);
        m.flush = timed(&mut server.conn(), &["FLUSHALL", "SYNC"]);
    }
    out
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
    // SAVE and the loads write and read RDB files. On this shared VM the
    // disk's fsync alone swung the same 1M-key SAVE between 0.3 and 1.1 s,
    // which buries the per-key work being compared: this group's servers
    // keep their files in /dev/shm (tmpfs) when there is one.
    let previous_tmpdir = std::env::var_os("TMPDIR");
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        std::env::set_var("TMPDIR", shm);
        println!("(memory and persistence servers keep their files in /dev/shm)");
    }
    let rows = measure_all(quick, full);
    match previous_tmpdir {
        Some(dir) => std::env::set_var("TMPDIR", dir),
        None => std::env::remove_var("TMPDIR"),
    }
    rows
}

fn measure_all(quick: bool, full: bool) -> Vec<Row> {
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
    let floor = floor_module();
    for &n in sizes {
        rows.extend(at_size(
            &mut server,
            n,
            floor.as_ref().map(|(_, so)| so.as_path()),
        ));
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
    let per_key = |kind: Kind| {
        let mut c = server.conn();
        let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut c).unwrap();
        let before = info_number(&mut c, "memory", "used_memory");
        fill(&mut c, n, kind);
        (info_number(&mut c, "memory", "used_memory") - before) / n as f64
    };
    let (lock_mem, set_mem) = (per_key(Kind::Lock), per_key(Kind::Set));
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

/// used_memory, SAVE and load of `n` locks against `n` SET PX keys, and
/// (when `floor` was built) against `n` values of the floor module.
fn at_size(server: &mut Server, n: usize, floor: Option<&std::path::Path>) -> Vec<Row> {
    let mut sets = Server::with(Options::default());
    let mut floor_server = floor.map(|so| {
        Server::with(
            Options::default()
                .without_module()
                .config("loadmodule", &so.to_string_lossy()),
        )
    });
    let mut servers = vec![(server, Kind::Lock), (&mut sets, Kind::Set)];
    if let Some(f) = floor_server.as_mut() {
        servers.push((f, Kind::Floor));
    }
    let measured = measure(&mut servers, n);
    let (lock, set) = (&measured[0], &measured[1]);
    let count = format!("{}k", n / 1000);
    let per_second = |seconds: f64| n as f64 / seconds;
    let mut rows = vec![
        row(
            &format!("used_memory per held lock, {count} locks"),
            "bytes",
            lock.memory,
            set.memory,
            Some(1.5),
        ),
        row(
            &format!("SAVE of {count} locks (warm, fastest of 5)"),
            "s",
            lock.save,
            set.save,
            Some(1.3),
        ),
        row(
            &format!("SAVE of {count} locks after DEBUG RELOAD (keys in RDB order)"),
            "s",
            lock.save_after_reload,
            set.save_after_reload,
            None,
        ),
        row(
            &format!("SAVE of {count} locks after it, rdbcompression no (no LZF)"),
            "s",
            lock.save_uncompressed,
            set.save_uncompressed,
            None,
        ),
        row(
            &format!("DEBUG RELOAD NOSAVE of {count} locks (issue #30's load)"),
            "s",
            lock.reload,
            set.reload,
            Some(1.5),
        ),
        Row {
            name: format!("locks loaded per second, {count} (DEBUG RELOAD NOSAVE)"),
            unit: "keys/s",
            hblock: per_second(lock.reload),
            baseline_name: "SET key owner PX".into(),
            baseline: per_second(set.reload),
            goal: Some((">= 1M/s".into(), per_second(lock.reload) >= 1_000_000.0)),
        },
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
    ];
    if let Some(floor) = measured.get(2) {
        rows.extend(floor_rows(&count, lock, set, floor));
    }
    rows
}

/// The floor module beside SET PX (what any module type with one ~36-byte
/// record pays), and hblock beside the floor (what hblock adds to it).
fn floor_rows(count: &str, lock: &Measured, set: &Measured, floor: &Measured) -> Vec<Row> {
    let floor_vs_set = |name: String, floor: f64, set: f64| row(&name, "s", floor, set, None);
    let lock_vs_floor = |name: String, lock: f64, floor: f64| Row {
        name,
        unit: "s",
        hblock: lock,
        baseline_name: "floor module type".into(),
        baseline: floor,
        goal: None,
    };
    vec![
        floor_vs_set(
            format!("(floor type, not hblock) SAVE of {count} values"),
            floor.save,
            set.save,
        ),
        floor_vs_set(
            format!("(floor type, not hblock) SAVE of {count} after DEBUG RELOAD"),
            floor.save_after_reload,
            set.save_after_reload,
        ),
        floor_vs_set(
            format!("(floor type, not hblock) SAVE of {count}, rdbcompression no"),
            floor.save_uncompressed,
            set.save_uncompressed,
        ),
        floor_vs_set(
            format!("(floor type, not hblock) DEBUG RELOAD NOSAVE of {count}"),
            floor.reload,
            set.reload,
        ),
        lock_vs_floor(
            format!("SAVE of {count} locks vs the floor type"),
            lock.save,
            floor.save,
        ),
        lock_vs_floor(
            format!("SAVE of {count} locks after DEBUG RELOAD vs the floor type"),
            lock.save_after_reload,
            floor.save_after_reload,
        ),
        lock_vs_floor(
            format!("DEBUG RELOAD NOSAVE of {count} locks vs the floor type"),
            lock.reload,
            floor.reload,
        ),
    ]
}
