//! Test support, a dev-only crate of the workspace: real servers
//! (`server.rs`), a 3+3 cluster (`cluster.rs`) and a master + replica
//! watched by three Sentinels (`sentinel.rs`) with the module loaded, one
//! RESP codec (`raw.rs`), one PRNG (`rng.rs`), forged DUMP payloads of lock
//! records (`dump.rs`), and the helpers below,
//! which take any connection (single server or cluster).

pub mod cluster;
pub mod dump;
pub mod raw;
pub mod rng;
pub mod sentinel;
mod server;
pub mod waiting;

pub use server::{module_path, refused_start, Options, Server};

use redis::{ConnectionLike, Value};
use std::time::{Duration, Instant};
/// Runs a command given as a list of byte-string-like arguments.
pub fn call<T: redis::FromRedisValue>(
    conn: &mut impl ConnectionLike,
    args: &[&[u8]],
) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("command name"));
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

/// The full error text of a failed command (`CODE detail`), or a panic when it succeeded.
pub fn error_of(conn: &mut impl ConnectionLike, args: &[&[u8]]) -> String {
    match call::<Value>(conn, args) {
        Ok(value) => panic!("expected an error from {:?}, got {value:?}", show(args)),
        Err(err) => error_text(&err),
    }
}

/// What every lock write answers on a replica, writable or not.
pub const READONLY: &str = "READONLY You can't write against a read only replica.";

/// Asserts that `conn`'s server refuses every lock write with [`READONLY`]:
/// ACQUIRE of a new lock, and BEAT, RELEASE, FENCED and LIMIT on `held`,
/// held by `o` with `token`.
pub fn lock_writes_refused(conn: &mut impl ConnectionLike, token: &str) {
    let t = token.as_bytes();
    for args in [
        &[
            &b"HBLOCK.ACQUIRE"[..],
            b"other",
            b"o",
            b"INTERVAL",
            b"600000",
        ][..],
        &[b"HBLOCK.BEAT", b"held", b"o", t],
        &[b"HBLOCK.RELEASE", b"held", b"o", t],
        &[b"HBLOCK.FENCED", b"held", b"o", t, b"SET", b"x", b"1"],
        &[b"HBLOCK.LIMIT", b"held", b"2"],
    ] {
        assert_eq!(error_of(conn, args), READONLY, "{:?}", show(args));
    }
}

pub fn error_text(err: &redis::RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => err.to_string(),
    }
}

pub fn show(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Polls `check` until it returns Some or the deadline passes.
pub fn eventually<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// HBLOCK.INFO as (field, value) pairs in reply order; None for a missing key.
pub fn info(conn: &mut impl ConnectionLike, key: &str) -> Option<Vec<(String, Value)>> {
    let reply: Value = redis::cmd("HBLOCK.INFO")
        .arg(key)
        .query(conn)
        .expect("HBLOCK.INFO");
    let items = match reply {
        Value::Nil => return None,
        Value::Array(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => panic!("unexpected HBLOCK.INFO reply {other:?}"),
    };
    let mut pairs = Vec::new();
    let mut it = items.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let name = match name {
            Value::BulkString(b) => String::from_utf8(b).expect("field name"),
            other => panic!("field name should be a bulk string, got {other:?}"),
        };
        pairs.push((name, value));
    }
    Some(pairs)
}

/// One HBLOCK.INFO field as an integer.
pub fn info_int(conn: &mut impl ConnectionLike, key: &str, field: &str) -> i64 {
    let pairs = info(conn, key).expect("lock exists");
    match pairs.into_iter().find(|(name, _)| name == field) {
        Some((_, Value::Int(n))) => n,
        other => panic!("field {field}: {other:?}"),
    }
}

/// One HBLOCK.INFO field as bytes (None for nil).
pub fn info_bytes(conn: &mut impl ConnectionLike, key: &str, field: &str) -> Option<Vec<u8>> {
    let pairs = info(conn, key).expect("lock exists");
    match pairs.into_iter().find(|(name, _)| name == field) {
        Some((_, Value::BulkString(b))) => Some(b),
        Some((_, Value::Nil)) => None,
        other => panic!("field {field}: {other:?}"),
    }
}

pub fn state(conn: &mut impl ConnectionLike, key: &str) -> String {
    String::from_utf8(info_bytes(conn, key, "state").expect("state")).expect("utf8")
}

/// Waits up to 5 s for the lock's INFO state to become `want`; fails the
/// test if it never does.
pub fn wait_for_state(c: &mut impl ConnectionLike, key: &str, want: &str) {
    let seen = eventually(Duration::from_secs(5), || {
        (state(c, key) == want).then_some(())
    });
    assert!(seen.is_some(), "{key} never became {want}");
}

/// `INFO hblock` counter `hblock_<name>`.
pub fn counter(conn: &mut impl ConnectionLike, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("hblock").query(conn).expect("INFO");
    let field = format!("hblock_{name}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&field))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO hblock:\n{info}"))
}

pub fn digest(conn: &mut impl ConnectionLike) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(conn)
        .expect("DEBUG DIGEST")
}

pub fn digest_value(conn: &mut impl ConnectionLike, key: &str) -> String {
    let v: Vec<String> = redis::cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg(key)
        .query(conn)
        .expect("DEBUG DIGEST-VALUE");
    v.into_iter().next().expect("one digest")
}

pub fn acquire(
    conn: &mut impl ConnectionLike,
    key: &str,
    owner: &str,
    opts: &[&str],
) -> Option<i64> {
    let mut cmd = redis::cmd("HBLOCK.ACQUIRE");
    cmd.arg(key).arg(owner);
    for o in opts {
        cmd.arg(*o);
    }
    cmd.query(conn).expect("HBLOCK.ACQUIRE")
}

/// A mix of every kind of record: held (short, binary and 1024-byte owners),
/// beaten, renewed with new terms, released, expired-and-seen, taken over.
pub fn mixed_workload(c: &mut impl ConnectionLike) {
    let long_owner = vec![b'L'; 1024];
    fn acquire(c: &mut impl ConnectionLike, key: &[u8], owner: &[u8], terms: &[&[u8]]) -> String {
        let mut args: Vec<&[u8]> = vec![b"HBLOCK.ACQUIRE", key, owner];
        args.extend_from_slice(terms);
        let token: i64 = call(c, &args).expect("ACQUIRE");
        token.to_string()
    }
    for (key, owner) in [
        (&b"w:held"[..], &b"alice"[..]),
        (b"w:bin", b"\0\xffbin\r\n"),
        (b"w:long", &long_owner),
    ] {
        let token = acquire(c, key, owner, &[b"INTERVAL", b"600000"]);
        let _: i64 = call(c, &[b"HBLOCK.BEAT", key, owner, token.as_bytes()]).expect("BEAT");
    }
    acquire(c, b"w:held", b"alice", &[b"MISSES", b"9"]);
    let token = acquire(c, b"w:free", b"bob", &[b"INTERVAL", b"600000"]);
    let _: i64 =
        call(c, &[b"HBLOCK.RELEASE", b"w:free", b"bob", token.as_bytes()]).expect("RELEASE");
    let mut expired = String::new();
    for key in [&b"w:expired"[..], b"w:taken"] {
        let token = acquire(c, key, b"old", &[b"INTERVAL", b"10", b"MISSES", b"1"]);
        if key == b"w:expired" {
            expired = token;
        }
    }
    std::thread::sleep(Duration::from_millis(25));
    let _ = call::<Value>(
        c,
        &[b"HBLOCK.BEAT", b"w:expired", b"old", expired.as_bytes()],
    );
    acquire(c, b"w:taken", b"new", &[b"INTERVAL", b"600000"]);
}

/// HBLOCK.INFO of a key without the fields that move with the clock.
pub fn stable_info(c: &mut impl ConnectionLike, key: &str) -> Vec<(String, Value)> {
    info(c, key)
        .expect("lock exists")
        .into_iter()
        .filter(|(name, _)| !["ttl", "age", "missed"].contains(&name.as_str()))
        .collect()
}

pub const WORKLOAD_KEYS: [&str; 6] = [
    "w:held",
    "w:bin",
    "w:long",
    "w:free",
    "w:expired",
    "w:taken",
];

/// A decimal integer as Redis parses it (no sign but '-', no spaces).
pub fn parse_plain_int(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.starts_with('+') || text.trim() != text || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// `CONFIG SET name value`, which must succeed.
pub fn config_set(c: &mut impl ConnectionLike, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c)
        .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
}

/// A field of `INFO <section>`.
pub fn info_field(c: &mut impl ConnectionLike, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(c).ok()?;
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

/// `INFO server`'s process_id: which process answers on a connection (a
/// port another test's server may have taken).
pub fn process_id(c: &mut impl ConnectionLike) -> Option<u32> {
    info_field(c, "server", "process_id")?.parse().ok()
}

/// `INFO memory`'s used_memory.
pub fn used_memory(c: &mut impl ConnectionLike) -> i64 {
    info_field(c, "memory", "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory")
}

/// Waits until the replica is linked and has processed everything the
/// master sent.
pub fn wait_in_sync(master: &mut impl ConnectionLike, replica: &mut impl ConnectionLike) {
    let synced = eventually(Duration::from_secs(10), || {
        let up = info_field(replica, "replication", "master_link_status")? == "up";
        let m = info_field(master, "replication", "master_repl_offset")?;
        let r = info_field(replica, "replication", "slave_repl_offset")?;
        (up && m == r).then_some(())
    });
    assert!(synced.is_some(), "replica did not catch up");
}
