//! HBLOCK.WATCH: answers once the lock's holder differs from the token the
//! caller last saw; blocks until then, or until its TIMEOUT.

use crate::support::{acquire, eventually, info_field, wait_in_sync, Server};
use redis::Value;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type Watching = JoinHandle<(redis::RedisResult<Value>, Instant)>;

fn spawn_watch(server: &Server, key: &str, opts: &[&str]) -> Watching {
    let mut conn = server.conn();
    // A watcher that is never woken fails the test instead of hanging it.
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let mut cmd = redis::cmd("HBLOCK.WATCH");
    cmd.arg(key).arg(opts);
    std::thread::spawn(move || (cmd.query::<Value>(&mut conn), Instant::now()))
}

/// Waits until `n` clients are blocked on the server.
fn wait_blocked(c: &mut redis::Connection, n: u64) {
    let blocked = eventually(Duration::from_secs(5), || {
        let now: u64 = info_field(c, "clients", "blocked_clients")?.parse().ok()?;
        (now == n).then_some(())
    });
    assert!(blocked.is_some(), "never {n} blocked clients");
}

/// The `token` and `state` of an INFO reply (None: nil).
fn holder_of(reply: &Value) -> Option<(String, i64)> {
    let Value::Array(items) = reply else {
        return None;
    };
    let field = |name: &str| {
        items
            .chunks(2)
            .find(|p| p.first() == Some(&Value::BulkString(name.as_bytes().to_vec())))
            .and_then(|p| p.get(1).cloned())
    };
    let state = match field("state") {
        Some(Value::BulkString(s)) => String::from_utf8_lossy(&s).into_owned(),
        _ => return None,
    };
    let token = match field("token") {
        Some(Value::Int(t)) => t,
        _ => return None,
    };
    Some((state, token))
}

fn joined(w: Watching) -> (Value, Instant) {
    let (reply, at) = w.join().expect("watcher thread");
    (reply.expect("WATCH reply"), at)
}

#[test]
fn answers_at_once_when_seen_differs_and_times_out_unchanged() {
    let server = Server::start();
    let mut c = server.conn();
    let missing: Value = redis::cmd("HBLOCK.WATCH")
        .arg(&["k", "TIMEOUT", "50"])
        .query(&mut c)
        .unwrap();
    assert_eq!(missing, Value::Nil, "TIMEOUT on a missing key: nil");
    let token = acquire(&mut c, "k", "a", &["INTERVAL", "60000"]).unwrap();
    let now: Value = redis::cmd("HBLOCK.WATCH").arg("k").query(&mut c).unwrap();
    assert_eq!(
        holder_of(&now),
        Some(("held".into(), token)),
        "SEEN 0 differs: at once"
    );
    let started = Instant::now();
    let same: Value = redis::cmd("HBLOCK.WATCH")
        .arg(&["k", "SEEN", &token.to_string(), "TIMEOUT", "100"])
        .query(&mut c)
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "TIMEOUT waited"
    );
    assert_eq!(
        holder_of(&same),
        Some(("held".into(), token)),
        "unchanged reply"
    );
    // Inside MULTI it answers at once, even with no difference.
    let (inside,): (Value,) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.WATCH")
        .arg(&["k", "SEEN", &token.to_string()])
        .query(&mut c)
        .unwrap();
    assert_eq!(holder_of(&inside), Some(("held".into(), token)));
    for bad in [
        &["k", "SEEN", "-1"][..],
        &["k", "TIMEOUT", "x"],
        &["k", "SEEN"],
        &["k", "BOGUS", "1"],
    ] {
        let err = redis::cmd("HBLOCK.WATCH")
            .arg(bad)
            .query::<Value>(&mut c)
            .unwrap_err();
        assert_eq!(err.code(), Some("ERR"), "{bad:?}");
    }
}

#[test]
fn wakes_on_grant_release_expiry_delete_flush_and_overwrite() {
    let server = Server::start();
    let mut c = server.conn();
    // Grant.
    let w = spawn_watch(&server, "k", &[]);
    wait_blocked(&mut c, 1);
    let t1 = acquire(&mut c, "k", "a", &["INTERVAL", "60000"]).unwrap();
    assert_eq!(holder_of(&joined(w).0), Some(("held".into(), t1)));
    // Release.
    let w = spawn_watch(&server, "k", &["SEEN", &t1.to_string()]);
    wait_blocked(&mut c, 1);
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(&["k", "a", &t1.to_string()])
        .query(&mut c)
        .unwrap();
    assert_eq!(holder_of(&joined(w).0).map(|h| h.0), Some("free".into()));
    // Expiry, by the timer at the deadline.
    let asked = Instant::now(); // the grant, and so the deadline, come later
    let t2 = acquire(&mut c, "k", "a", &["INTERVAL", "100", "MISSES", "1"]).unwrap();
    let granted = Instant::now();
    let w = spawn_watch(&server, "k", &["SEEN", &t2.to_string()]);
    let (reply, at) = joined(w);
    let late = at.saturating_duration_since(granted + Duration::from_millis(100));
    eprintln!("WATCH woken {late:?} after the lease's deadline");
    assert!(
        at >= asked + Duration::from_millis(99),
        "woken before the deadline"
    );
    assert_eq!(holder_of(&reply).map(|h| h.0), Some("expired".into()));
    // DEL, FLUSHALL, an overwrite with another type.
    for wipe in [&["DEL", "k"][..], &["FLUSHALL"], &["SET", "k", "v"]] {
        wakes_on_wipe(&server, &mut c, wipe, wipe[0] != "SET");
    }
}

/// A watcher of a lease that cannot end during the test is woken by `wipe`
/// alone: answered nil when the key is `gone`, else WRONGTYPE (another type
/// took its place). Deletes the key afterwards.
fn wakes_on_wipe(server: &Server, c: &mut redis::Connection, wipe: &[&str], gone: bool) {
    let t = acquire(c, "k", "a", &["INTERVAL", "86400000"]).expect("granted");
    let w = spawn_watch(server, "k", &["SEEN", &t.to_string()]);
    wait_blocked(c, 1);
    let _: Value = redis::cmd(wipe[0]).arg(&wipe[1..]).query(c).unwrap();
    let (reply, _) = w.join().expect("watcher");
    if gone {
        assert_eq!(reply.expect("reply"), Value::Nil, "{wipe:?}: gone");
    } else {
        let err = reply.expect_err("WRONGTYPE");
        assert_eq!(err.code(), Some("WRONGTYPE"), "{wipe:?}: {err}");
    }
    let _: i64 = redis::cmd("DEL").arg("k").query(c).unwrap();
}

/// hblock learns that a lock left its key from the data type's unlink
/// callback, not from each type's write events: every way out wakes.
#[test]
fn wakes_when_any_command_of_any_type_replaces_the_lock_or_its_ttl_ends() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SADD").arg(&["s1", "m"]).query(&mut c).unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(&["z1", "1", "m"])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RPUSH").arg(&["l1", "1"]).query(&mut c).unwrap();
    let _: () = redis::cmd("SET").arg(&["b1", "x"]).query(&mut c).unwrap();
    let wipes: [(&[&str], bool); 6] = [
        (&["SUNIONSTORE", "k", "s1"], false),
        (&["ZUNIONSTORE", "k", "1", "z1"], false),
        (&["SORT", "l1", "STORE", "k"], false),
        (&["BITOP", "NOT", "k", "b1"], false),
        (&["MSET", "k", "v", "other", "v"], false),
        (&["PEXPIRE", "k", "30"], true),
    ];
    for (wipe, gone) in wipes {
        wakes_on_wipe(&server, &mut c, wipe, gone);
    }
}

#[test]
fn a_watcher_away_across_leases_gets_the_latest_and_many_wake_at_once() {
    let server = Server::start();
    let mut c = server.conn();
    let first = acquire(&mut c, "k", "a", &["INTERVAL", "60000"]).unwrap();
    let mut last = first;
    for owner in ["b", "c", "d"] {
        let _: i64 = redis::cmd("DEL").arg("k").query(&mut c).unwrap();
        last = acquire(&mut c, "k", owner, &["INTERVAL", "60000"]).unwrap();
    }
    let latest: Value = redis::cmd("HBLOCK.WATCH")
        .arg(&["k", "SEEN", &first.to_string()])
        .query(&mut c)
        .unwrap();
    assert_eq!(
        holder_of(&latest),
        Some(("held".into(), last)),
        "the latest lease, at once"
    );
    // 1,000 watchers, one change.
    let n = 1000;
    let watchers: Vec<Watching> = (0..n)
        .map(|_| spawn_watch(&server, "k", &["SEEN", &last.to_string()]))
        .collect();
    wait_blocked(&mut c, n as u64);
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(&["k", "d"])
        .arg(last)
        .query(&mut c)
        .unwrap();
    let changed = Instant::now();
    let mut latest_wake = Duration::ZERO;
    for w in watchers {
        let (reply, at) = joined(w);
        assert_eq!(holder_of(&reply).map(|h| h.0), Some("free".into()));
        latest_wake = latest_wake.max(at.saturating_duration_since(changed));
    }
    eprintln!("1000 watchers: the last woken {latest_wake:?} after the release");
}

#[test]
fn a_replica_wakes_its_watchers_on_replicated_changes_and_its_own_clock() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    let w = spawn_watch(&replica, "k", &[]);
    wait_blocked(&mut r, 1);
    let token = acquire(&mut m, "k", "a", &["INTERVAL", "60000"]).unwrap();
    assert_eq!(
        holder_of(&joined(w).0),
        Some(("held".into(), token)),
        "a replicated grant"
    );
    // A replicated overwrite: the replica's own unlink callback sees it.
    let w = spawn_watch(&replica, "k", &["SEEN", &token.to_string()]);
    wait_blocked(&mut r, 1);
    let _: () = redis::cmd("SET").arg(&["k", "text"]).query(&mut m).unwrap();
    let err = w.join().expect("watcher").0.expect_err("WRONGTYPE");
    assert_eq!(err.code(), Some("WRONGTYPE"), "a replicated SET: {err}");
    let short = acquire(&mut m, "s", "a", &["INTERVAL", "150", "MISSES", "1"]).unwrap();
    wait_in_sync(&mut m, &mut r);
    drop(master); // no expiry will be replicated: the replica's clock decides
    let w = spawn_watch(&replica, "s", &["SEEN", &short.to_string()]);
    let (reply, _) = joined(w);
    assert_eq!(holder_of(&reply).map(|h| h.0), Some("expired".into()));
}

/// TIMEOUT runs on a module timer: never early, and not rounded up to
/// Redis's blocked-client timeout resolution (1000/hz ms, 100 ms by
/// default). Only the lower bound is asserted; the latency is printed.
#[test]
fn timeout_ends_on_time_even_while_writes_are_paused() {
    let server = Server::start();
    let mut c = server.conn();
    let token = acquire(&mut c, "k", "a", &["INTERVAL", "600000"]).unwrap();
    let seen = token.to_string();
    let watch = |c: &mut redis::Connection, timeout_ms: u64| {
        let started = Instant::now();
        let reply: Value = redis::cmd("HBLOCK.WATCH")
            .arg(&["k", "SEEN", &seen, "TIMEOUT", &timeout_ms.to_string()])
            .query(c)
            .unwrap();
        let took = started.elapsed();
        assert_eq!(holder_of(&reply), Some(("held".into(), token)), "unchanged");
        // The server's clock counts whole milliseconds: up to 1 ms behind ours.
        assert!(
            took + Duration::from_millis(1) >= Duration::from_millis(timeout_ms),
            "TIMEOUT {timeout_ms} answered after {took:?}"
        );
        assert!(
            took < Duration::from_secs(2),
            "TIMEOUT {timeout_ms}: {took:?}"
        );
        took
    };
    for timeout_ms in [1, 5, 50, 250] {
        let took = watch(&mut c, timeout_ms);
        eprintln!("WATCH TIMEOUT {timeout_ms}: answered after {took:?}");
    }
    // Ending a TIMEOUT writes nothing: it answers while writes are paused
    // (a timer that wrote now would abort the server).
    let mut other = server.conn();
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "10000", "WRITE"])
        .query(&mut other)
        .unwrap();
    let took = watch(&mut c, 50);
    eprintln!("WATCH TIMEOUT 50 during CLIENT PAUSE WRITE: answered after {took:?}");
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut other)
        .unwrap();
}

#[test]
fn client_unblock_answers_a_waiting_watcher_its_info_or_unblocked() {
    let server = Server::start();
    let mut c = server.conn();
    let token = acquire(&mut c, "k", "a", &["INTERVAL", "600000"]).unwrap();
    for (mode, timeout) in [(None, "0"), (Some("ERROR"), "0"), (None, "60000")] {
        let mut conn = server.conn();
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
        let seen = token.to_string();
        let w = std::thread::spawn(move || {
            redis::cmd("HBLOCK.WATCH")
                .arg(&["k", "SEEN", &seen, "TIMEOUT", timeout])
                .query::<Value>(&mut conn)
        });
        wait_blocked(&mut c, 1);
        let mut unblock = redis::cmd("CLIENT");
        unblock.arg("UNBLOCK").arg(id).arg(mode);
        assert_eq!(unblock.query::<i64>(&mut c).unwrap(), 1, "{mode:?}");
        let reply = w.join().unwrap();
        match mode {
            None => assert_eq!(
                holder_of(&reply.unwrap()),
                Some(("held".into(), token)),
                "TIMEOUT {timeout}: the INFO reply, as for a timeout"
            ),
            Some(_) => {
                let err = reply.expect_err("UNBLOCKED");
                assert_eq!(err.code(), Some("UNBLOCKED"), "{err}");
            }
        }
    }
    wait_blocked(&mut c, 0);
}
