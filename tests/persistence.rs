use crate::support::{
    acquire, call, digest, digest_value, info_bytes, info_int, mixed_workload, stable_info, state,
    Options, Server, WORKLOAD_KEYS,
};
use redis::Connection;
use std::time::Duration;

fn snapshot(c: &mut Connection) -> (String, Vec<Vec<(String, redis::Value)>>) {
    let infos = WORKLOAD_KEYS.iter().map(|k| stable_info(c, k)).collect();
    (digest(c), infos)
}

#[test]
fn every_field_survives_an_rdb_restart() {
    let mut server = Server::start();
    let mut c = server.conn();
    mixed_workload(&mut c);
    let before = snapshot(&mut c);
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(snapshot(&mut c), before);
    assert_eq!(state(&mut c, "w:expired"), "expired");
    assert_eq!(state(&mut c, "w:free"), "free");
    // Tokens continue above every earlier one (a restart starts an epoch).
    let token = acquire(&mut c, "w:free", "carol", &[]).expect("granted");
    assert!(token > 1 << 32, "{token}");
}

fn wait_rewrite_done(c: &mut Connection) {
    let done = crate::support::eventually(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("persistence").query(c).ok()?;
        let busy =
            info.contains("aof_rewrite_in_progress:1") || info.contains("aof_rewrite_scheduled:1");
        (!busy).then_some(())
    });
    assert!(done.is_some(), "AOF rewrite did not finish");
}

#[test]
fn aof_replay_rebuilds_exactly_the_same_records() {
    let options = Options::default()
        .config("appendonly", "yes")
        .config("appendfsync", "always");
    let mut server = Server::with(options);
    let mut c = server.conn();
    mixed_workload(&mut c);
    let before = snapshot(&mut c);
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(snapshot(&mut c), before);
}

#[test]
fn aof_rewrite_without_rdb_preamble_round_trips() {
    let options = Options::default()
        .config("appendonly", "yes")
        .config("appendfsync", "always")
        .config("aof-use-rdb-preamble", "no");
    let mut server = Server::with(options);
    let mut c = server.conn();
    mixed_workload(&mut c);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    wait_rewrite_done(&mut c);
    // Writes after the rewrite land in the incremental file.
    let _: i64 = call(&mut c, &[b"HBLOCK.BEAT", b"w:held", b"alice", b"1"]).unwrap();
    let before = snapshot(&mut c);
    let base: Vec<u8> = std::fs::read_dir(server.dir().join("appendonlydir"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".base."))
        .flat_map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert!(
        base.windows(12).any(|w| w == b"HBLOCK.APPLY"),
        "the rewritten AOF holds HBLOCK.APPLY records"
    );
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(snapshot(&mut c), before);
}

#[test]
fn debug_reload_and_rdb_preamble_aof_round_trip() {
    let options = Options::default().config("appendonly", "yes");
    let mut server = Server::with(options);
    let mut c = server.conn();
    mixed_workload(&mut c);
    let before = snapshot(&mut c);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(snapshot(&mut c), before);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    wait_rewrite_done(&mut c);
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(snapshot(&mut c), before);
}

#[test]
fn copy_makes_an_independent_record_whose_lease_is_ended() {
    let server = Server::start();
    let mut c = server.conn();
    mixed_workload(&mut c);
    for key in WORKLOAD_KEYS {
        let copy = format!("{key}:copy");
        let was = state(&mut c, key);
        let copied: i64 = redis::cmd("COPY")
            .arg(key)
            .arg(&copy)
            .query(&mut c)
            .unwrap();
        assert_eq!(copied, 1);
        assert_eq!(state(&mut c, key), was, "the source is untouched: {key}");
        if was == "held" {
            // Never a second holder of one lease (docs/guarantees.md).
            assert_eq!(state(&mut c, &copy), "free", "{key}");
            assert_eq!(
                info_int(&mut c, key, "token"),
                info_int(&mut c, &copy, "token"),
                "{key}"
            );
        } else {
            assert_eq!(
                digest_value(&mut c, key),
                digest_value(&mut c, &copy),
                "{key}"
            );
            assert_eq!(
                stable_info(&mut c, key),
                stable_info(&mut c, &copy),
                "{key}"
            );
        }
    }
    let released: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"w:held", b"alice", b"1"]).unwrap();
    assert_eq!(released, 1);
    let token = acquire(&mut c, "w:held:copy", "carol", &[]).unwrap();
    assert!(token > 1, "the copy is its own record: {token}");
    assert_eq!(state(&mut c, "w:held"), "free");
}

#[test]
fn memory_usage_is_within_1_5x_of_a_set_px_key() {
    let server = Server::start();
    let mut c = server.conn();
    let owner = "owner-17-bytes-xx";
    assert_eq!(owner.len(), 17);
    acquire(&mut c, "lock:mem", owner, &[]);
    let _: () = redis::cmd("SET")
        .arg("str:mem")
        .arg(owner)
        .arg("PX")
        .arg(30000)
        .query(&mut c)
        .unwrap();
    let lock: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("lock:mem")
        .query(&mut c)
        .unwrap();
    let string: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("str:mem")
        .query(&mut c)
        .unwrap();
    eprintln!("MEMORY USAGE: lock {lock} bytes, SET PX {string} bytes");
    if server_is_valkey(&mut c) {
        // Valkey 8 embeds the key and its expiry in the value object: a SET PX
        // key is 56 bytes there. The 1.5x goal is against Redis 7.0 (88 bytes);
        // on Valkey check only that the record is counted.
        assert!(lock >= 80, "lock {lock}");
    } else {
        assert!(lock * 2 <= string * 3, "lock {lock} > 1.5 x {string}");
    }
    // Accurate: a long owner is counted.
    let long = "x".repeat(1000);
    acquire(&mut c, "lock:long", &long, &[]);
    let long_usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("lock:long")
        .query(&mut c)
        .unwrap();
    assert!(
        long_usage >= lock + 1000 - 32,
        "long owner not counted: {long_usage}"
    );
}

/// Redis SIGKILLed and restarted again and again with `appendfsync always`:
/// no token ever goes backwards and no lease is granted twice.
#[test]
fn tokens_never_go_backwards_across_crashes() {
    let options = Options::default()
        .config("appendonly", "yes")
        .config("appendfsync", "always");
    let mut server = Server::with(options);
    let keys = ["crash:a", "crash:b", "crash:c"];
    let mut granted: std::collections::HashMap<&str, Vec<i64>> = Default::default();
    for round in 0..5 {
        let mut c = server.conn();
        for i in 0..30 {
            let key = keys[i % keys.len()];
            let owner = format!("r{round}i{i}");
            // The three leases left held at the crash expire 50 ms after the
            // restart; the others are released at once, and are long enough
            // to outlast a slow fsync of the AOF before the reply.
            let interval = if i < 27 { 5000 } else { 50 };
            let token: Option<i64> = redis::cmd("HBLOCK.ACQUIRE")
                .arg(key)
                .arg(&owner)
                .arg("INTERVAL")
                .arg(interval)
                .arg("MISSES")
                .arg(1)
                .arg("WAIT")
                .arg(10000) // each grant waits for an fsync of the AOF
                .query(&mut c)
                .unwrap();
            let token = token.expect("granted within the WAIT");
            granted.entry(key).or_default().push(token);
            if i < 27 {
                let released: i64 = call(
                    &mut c,
                    &[
                        b"HBLOCK.RELEASE",
                        key.as_bytes(),
                        owner.as_bytes(),
                        token.to_string().as_bytes(),
                    ],
                )
                .unwrap();
                assert_eq!(released, 1);
            }
        }
        server.crash_and_restart(); // SIGKILL with three leases still held
    }
    for (key, tokens) in &granted {
        assert!(
            tokens.windows(2).all(|w| w[0] < w[1]),
            "{key}: tokens {tokens:?}"
        );
        assert_eq!(tokens.len(), 50, "{key}");
    }
    // One sequence for the data set, a new epoch after each restart: no
    // token was handed out twice, to any key.
    let mut all: Vec<i64> = granted.values().flatten().copied().collect();
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "a token was handed out twice");
    {}
}

fn server_is_valkey(c: &mut Connection) -> bool {
    let info: String = redis::cmd("INFO").arg("server").query(c).unwrap();
    info.contains("valkey_version:") || info.contains("server_name:valkey")
}

/// A lock in a fixture: key, owner, then token, interval, misses, beats and
/// takeovers.
type FixtureLock<'a> = (&'a str, Option<&'a [u8]>, [i64; 5]);

/// Loads an RDB fixture written by an earlier build and checks each lock's
/// fields, as written.
fn fixture_loads_unchanged(file: &str, locks: [FixtureLock; 3]) {
    let mut server = Server::start();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    std::fs::copy(&fixture, server.dir().join("dump.rdb")).expect("copy the fixture");
    server.crash_and_restart(); // loads dump.rdb from its directory
    let mut c = server.conn();
    for (key, owner, values) in locks {
        assert_eq!(
            info_bytes(&mut c, key, "owner").as_deref(),
            owner,
            "{file} {key}"
        );
        let fields = ["token", "interval", "misses", "beats", "takeovers"];
        for (field, value) in fields.into_iter().zip(values) {
            assert_eq!(info_int(&mut c, key, field), value, "{file} {key} {field}");
        }
    }
}

/// Encoding version 1 (nine RDB items per record, before the record was
/// described by one table) loads with every field in place.
#[test]
fn an_rdb_from_an_earlier_build_loads_unchanged() {
    fixture_loads_unchanged(
        "locks-encver1.rdb",
        [
            ("held", Some(b"alice"), [1, 86_400_000, 7, 1, 0]),
            ("free", None, [1, 1000, 3, 0, 0]),
            ("bin", Some(b"new"), [2, 86_400_000, 3, 0, 1]),
        ],
    );
}

/// Encoding version 2 (the record as one string, numbers as fixed 8-byte
/// integers) loads too; this build writes version 4 (version 3 plus the history).
#[test]
fn an_rdb_of_encoding_2_loads_unchanged() {
    fixture_loads_unchanged(
        "locks-encver2.rdb",
        [
            ("held", Some(b"alice"), [1, 86_400_000, 7, 1, 0]),
            ("free", None, [2, 1000, 3, 0, 0]),
            ("bin", Some(b"new"), [4, 86_400_000, 3, 0, 1]),
        ],
    );
}

/// Encoding version 3 (varints, the owner apart; the last before the
/// holder history was kept in the record) loads too, written by the build
/// of commit b556843 (a waiter that timed out on `held` left nothing).
#[test]
fn an_rdb_of_encoding_3_loads_unchanged() {
    fixture_loads_unchanged(
        "locks-encver3.rdb",
        [
            ("held", Some(b"alice"), [1, 86_400_000, 7, 1, 0]),
            ("free", None, [2, 1000, 3, 0, 0]),
            ("bin", Some(b"new"), [4, 86_400_000, 3, 0, 1]),
        ],
    );
}

/// Encoding version 4 (version 3 plus the holder history, the last before
/// permits), written by the build of commit 9ce160b with `history 5`: `free`
/// and `bin` keep the lease ends they had.
#[test]
fn an_rdb_of_encoding_4_loads_unchanged() {
    fixture_loads_unchanged(
        "locks-encver4.rdb",
        [
            ("held", Some(b"alice"), [1, 86_400_000, 7, 1, 0]),
            ("free", None, [2, 1000, 3, 0, 0]),
            ("bin", Some(b"new"), [4, 86_400_000, 3, 0, 1]),
        ],
    );
    let mut server = Server::start();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/locks-encver4.rdb");
    std::fs::copy(&fixture, server.dir().join("dump.rdb")).expect("copy the fixture");
    server.crash_and_restart();
    let mut c = server.conn();
    for (key, owner, token) in [("free", "a", 2), ("bin", "old", 3)] {
        let entries: Vec<Vec<redis::Value>> =
            redis::cmd("HBLOCK.HISTORY").arg(key).query(&mut c).unwrap();
        assert_eq!(entries.len(), 1, "{key}: {entries:?}");
        assert_eq!(
            entries[0][1],
            redis::Value::BulkString(owner.into()),
            "{key}"
        );
        assert_eq!(entries[0][3], redis::Value::Int(token), "{key}");
    }
}

/// An AOF written by an earlier build, whose replication and AOF records were
/// all ten-field `HBLOCK.APPLY key phase owner token interval misses beats
/// granted last_beat takeovers` commands, still loads (the compact one-field
/// form is what this build writes for every change).
#[test]
fn an_aof_of_ten_field_records_from_an_earlier_build_loads() {
    // `appendfsync always`: the BEAT below must be in the AOF when the
    // server is SIGKILLed (everysec may postpone the write and still answer).
    let options = Options::default()
        .config("appendonly", "yes")
        .config("appendfsync", "always");
    let mut server = Server::with(options);
    let mut c = server.conn();
    let _: i64 = redis::cmd("INCR").arg("x").query(&mut c).unwrap();
    let dir = server.dir().join("appendonlydir");
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let incr = manifest
        .lines()
        .find(|l| l.contains("type i"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("an incr file in the manifest")
        .to_string();
    server.stop();
    // A beat far in the future (held): the latest time a record may hold,
    // the end of year 9999 (hblock_core::limits::TIME_MAX_MS).
    let far = 253_402_300_799_999_i64.to_string();
    let records: [&[&str]; 2] = [
        &[
            "HBLOCK.APPLY",
            "old:held",
            "1",
            "alice",
            "7",
            "60000",
            "3",
            "2",
            &far,
            &far,
            "1",
        ],
        &[
            "HBLOCK.APPLY",
            "old:free",
            "0",
            "",
            "3",
            "1000",
            "3",
            "0",
            "5",
            "5",
            "0",
        ],
    ];
    let mut aof = Vec::new();
    crate::support::raw::encode(&["SELECT", "0"], &mut aof);
    for record in records {
        crate::support::raw::encode(record, &mut aof);
    }
    std::fs::write(dir.join(&incr), aof).unwrap();
    server.relaunch();
    let mut c = server.conn();
    // A deadline centuries away once overflowed Redis's module timer
    // arithmetic: the server grew to 21 GB, or spun at 100% CPU.
    let cpu = |c: &mut Connection| -> f64 {
        ["used_cpu_user", "used_cpu_sys"]
            .iter()
            .filter_map(|f| crate::support::info_field(c, "cpu", f)?.parse::<f64>().ok())
            .sum()
    };
    let before = cpu(&mut c);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu(&mut c) - before;
    assert!(used < 0.3, "the idle server used {used:.2} s of CPU in 1 s");
    assert_eq!(state(&mut c, "old:held"), "held", "{}", server.log());
    assert_eq!(
        info_bytes(&mut c, "old:held", "owner").as_deref(),
        Some(&b"alice"[..])
    );
    let fields = [
        ("token", 7),
        ("interval", 60000),
        ("beats", 2),
        ("takeovers", 1),
    ];
    for (field, value) in fields {
        assert_eq!(info_int(&mut c, "old:held", field), value, "{field}");
    }
    assert_eq!(state(&mut c, "old:free"), "free");
    assert_eq!(info_int(&mut c, "old:free", "token"), 3);
    // New writes go on in the compact form and survive a restart too.
    let beats: i64 = redis::cmd("HBLOCK.BEAT")
        .arg(&["old:held", "alice", "7"])
        .query(&mut c)
        .unwrap();
    assert_eq!(beats, 3);
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(info_int(&mut c, "old:held", "beats"), 3);
}

/// Leases loaded with a data set (DEBUG RELOAD, a restart) are checked by
/// their deadlines: their checks, staged while loading, join the schedule
/// when it ends, and the timer expires them without anyone touching them.
#[test]
fn leases_loaded_with_a_data_set_expire_on_time() {
    let mut server = Server::start();
    let mut c = server.conn();
    let short = |c: &mut Connection, key: &str| {
        acquire(c, key, "o", &["INTERVAL", "3000", "MISSES", "1"]).expect("granted")
    };
    let expired_within = |c: &mut Connection, before: u64, n: u64| {
        crate::support::eventually(Duration::from_secs(10), || {
            (crate::support::counter(c, "expired") >= before + n).then_some(())
        })
    };
    for key in ["s:1", "s:2", "s:3"] {
        short(&mut c, key);
    }
    acquire(&mut c, "s:long", "o", &["INTERVAL", "600000"]).expect("granted");
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    let before = crate::support::counter(&mut c, "expired");
    assert!(
        expired_within(&mut c, before, 3).is_some(),
        "{}",
        server.log()
    );
    assert_eq!(state(&mut c, "s:long"), "held");
    for key in ["s:4", "s:5"] {
        short(&mut c, key);
    }
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    server.crash_and_restart();
    let mut c = server.conn();
    assert!(expired_within(&mut c, 0, 2).is_some(), "{}", server.log());
    assert_eq!(state(&mut c, "s:long"), "held");
}
