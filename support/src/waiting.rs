//! Clients blocked in ACQUIRE and leases that run out, for the tests of
//! operations (pauses, failovers, CLIENT UNBLOCK, eviction).

use crate::{call, counter, eventually, info_int, Server};
use redis::{ConnectionLike, Value};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A client blocked in `ACQUIRE key owner INTERVAL 60000 WAIT 0` on its own
/// connection (a lease it is granted outlives the test's 5 s read timeout):
/// its client id, and the thread that returns (reply, the reply to a PING
/// sent after it) so that a missing reply shows as an off-by-one PING.
pub fn blocked_waiter(
    server: &Server,
    key: &str,
    owner: &str,
) -> (i64, JoinHandle<(redis::RedisResult<Value>, String)>) {
    let mut conn = server.conn();
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    let (key, owner) = (key.to_string(), owner.to_string());
    let thread = std::thread::spawn(move || {
        let reply = redis::cmd("HBLOCK.ACQUIRE")
            .arg(&key)
            .arg(&owner)
            .arg(&["INTERVAL", "60000", "WAIT", "0"])
            .query::<Value>(&mut conn);
        let pong = redis::cmd("PING")
            .arg("after")
            .query::<String>(&mut conn)
            .unwrap_or_else(|e| format!("error: {e}"));
        (reply, pong)
    });
    (id, thread)
}

pub fn wait_for_waiters(conn: &mut impl ConnectionLike, n: u64) {
    let queued = eventually(Duration::from_secs(5), || {
        (counter(conn, "waiting") == n).then_some(())
    });
    assert!(queued.is_some(), "{n} waiters never queued");
}

/// `n` leases that run out one after another over the next `n` ms or so.
pub fn lapsing_leases(conn: &mut impl ConnectionLike, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        let interval = (20 + i).to_string();
        pipe.cmd("HBLOCK.ACQUIRE")
            .arg(format!("lapse:{i}"))
            .arg("o")
            .arg("INTERVAL")
            .arg(interval)
            .arg("MISSES")
            .arg(1)
            .ignore();
    }
    let _: () = pipe.query(conn).expect("lapsing leases");
}

/// A blocking ACQUIRE on its own connection: its reply and when it arrived.
pub type Waiting = JoinHandle<(redis::RedisResult<Option<i64>>, Instant)>;

pub fn spawn_acquire(server: &Server, key: &str, owner: &str, opts: &[&str]) -> Waiting {
    let mut conn = server.conn();
    let mut cmd = redis::cmd("HBLOCK.ACQUIRE");
    cmd.arg(key).arg(owner);
    for o in opts {
        cmd.arg(*o);
    }
    std::thread::spawn(move || {
        let reply = cmd.query::<Option<i64>>(&mut conn);
        (reply, Instant::now())
    })
}

/// Waits until `n` clients wait on `key` (so arrival order is known).
pub fn wait_for_key_waiters(c: &mut impl ConnectionLike, key: &str, n: i64) {
    let seen = eventually(Duration::from_secs(5), || {
        (info_int(c, key, "waiters") == n).then_some(())
    });
    assert!(
        seen.is_some(),
        "{key}: never {n} waiters (now {})",
        info_int(c, key, "waiters")
    );
}

/// HBLOCK.RELEASE; its reply.
pub fn release(c: &mut impl ConnectionLike, key: &str, owner: &str, token: i64) -> i64 {
    call(
        c,
        &[
            b"HBLOCK.RELEASE",
            key.as_bytes(),
            owner.as_bytes(),
            token.to_string().as_bytes(),
        ],
    )
    .unwrap()
}

/// The reply of a finished waiter and when it came.
pub fn joined(w: Waiting) -> (Option<i64>, Instant) {
    let (reply, at) = w.join().expect("waiter thread");
    (reply.expect("ACQUIRE reply"), at)
}
