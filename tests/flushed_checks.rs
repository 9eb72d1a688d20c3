//! Lease checks of flushed databases: FLUSHALL (sync and async), FLUSHDB and
//! DEBUG RELOAD free them at once instead of keeping them until their time
//! (tens of MB for a million locks with hour-long leases), and never those
//! of a database that still holds locks. Memory is compared after a warm-up
//! round, with the same clients connected.

use crate::support::waiting::{joined, spawn_acquire, wait_for_key_waiters};
use crate::support::{acquire, counter, eventually, used_memory, Server};
use redis::Connection;
use std::time::{Duration, Instant};

/// Locks per round. Their 200-byte names make each round's checks ~4 MB.
const LOCKS: usize = 20_000;
/// How far `used_memory` may end above the warm-up's.
const SLACK: i64 = 1 << 20;
/// A lease that outlives the test by far.
const LONG: [&str; 4] = ["INTERVAL", "3600000", "MISSES", "1"];

/// `LOCKS` held locks with long leases in the database `c` has selected.
fn fill(c: &mut Connection, tag: &str) {
    let mut pipe = redis::pipe();
    for i in 0..LOCKS {
        pipe.cmd("HBLOCK.ACQUIRE")
            .arg(format!("{tag}:{i:08}:{:x<190}", ""))
            .arg("owner-17-bytes-xx")
            .arg(&LONG)
            .ignore();
    }
    let _: () = pipe.query(c).expect("fill");
}

fn run(c: &mut Connection, args: &[&str]) {
    let _: redis::Value = redis::cmd(args[0])
        .arg(&args[1..])
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

/// Waits (async frees run in the background) until `used_memory` is back
/// within SLACK of `baseline`.
fn assert_back_near(c: &mut Connection, baseline: i64, after: &str) {
    let back = eventually(Duration::from_secs(10), || {
        (used_memory(c) - baseline <= SLACK).then_some(())
    });
    let now = used_memory(c);
    eprintln!(
        "{after}: used_memory {baseline} -> {now} ({:+})",
        now - baseline
    );
    assert!(
        back.is_some(),
        "{after}: used_memory {now}, {} bytes above the warm-up's {baseline}",
        now - baseline
    );
}

#[test]
fn flushes_drop_the_checks_of_emptied_databases_and_keep_the_others() {
    let server = Server::start();
    let mut c = server.conn();
    let mut db1 = server.conn();
    run(&mut db1, &["SELECT", "1"]);
    fill(&mut db1, "warm");
    run(&mut c, &["FLUSHALL"]);
    let baseline = used_memory(&mut c);

    // FLUSHDB of db 1 while db 0 holds a short lease with a waiter: its
    // check stays, and the waiter gets the lock when the lease ends.
    let granted = Instant::now();
    let short = ["INTERVAL", "1000", "MISSES", "2"];
    assert!(acquire(&mut c, "short", "a", &short).is_some());
    let waiter = spawn_acquire(&server, "short", "w", &["WAIT", "0"]);
    wait_for_key_waiters(&mut c, "short", 1);
    fill(&mut db1, "one");
    run(&mut db1, &["FLUSHDB"]);
    let (token, at) = joined(waiter);
    assert!(token.is_some(), "the waiter was refused");
    let waited = at.duration_since(granted);
    assert!(
        waited >= Duration::from_millis(1990) && waited < Duration::from_secs(5),
        "granted {waited:?} after the 2 s lease began"
    );
    run(&mut c, &["DEL", "short"]);
    assert_back_near(&mut c, baseline, "FLUSHDB");

    for mode in ["SYNC", "ASYNC"] {
        fill(&mut c, "zero");
        fill(&mut db1, "one");
        run(&mut c, &["FLUSHALL", mode]);
        assert_back_near(&mut c, baseline, &format!("FLUSHALL {mode}"));
    }
}

#[test]
fn repeated_reloads_do_not_grow_memory_and_loaded_leases_still_end() {
    let server = Server::start();
    let mut c = server.conn();
    fill(&mut c, "lk");
    run(&mut c, &["DEBUG", "RELOAD"]);
    let baseline = used_memory(&mut c);
    assert!(acquire(&mut c, "short", "a", &["INTERVAL", "2000", "MISSES", "3"]).is_some());
    for _ in 0..5 {
        run(&mut c, &["DEBUG", "RELOAD"]);
    }
    assert_back_near(&mut c, baseline, "5 x DEBUG RELOAD");
    // The short lease, loaded five times, is checked and ends on time.
    let expired = eventually(Duration::from_secs(10), || {
        (counter(&mut c, "expired") == 1).then_some(())
    });
    assert!(expired.is_some(), "the reloaded lease never expired");
    assert_eq!(
        redis::cmd("DBSIZE").query::<usize>(&mut c).ok(),
        Some(LOCKS + 1)
    );
}
