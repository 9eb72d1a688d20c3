//! Blocking ACQUIRE: hand-off at release, grant at the deadline, WAIT,
//! FIFO order, MULTI/Lua, clients that leave the queue.

use crate::support::waiting::{joined, release, spawn_acquire, wait_for_key_waiters, Waiting};
use crate::support::{acquire, counter, error_text, info_bytes, info_int, state, Options, Server};
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn release_hands_the_lock_to_the_waiter_before_anything_else() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let waiter = spawn_acquire(&server, "lock", "b", &["WAIT", "0"]);
    wait_for_key_waiters(&mut c, "lock", 1);
    assert_eq!(counter(&mut c, "waiting"), 1);
    // Released and granted in one step: the very next command (in the same
    // pipeline, so no other client can run in between) sees b as the holder.
    let (released, info): (i64, Vec<redis::Value>) = redis::pipe()
        .cmd("HBLOCK.RELEASE")
        .arg("lock")
        .arg("a")
        .arg(1)
        .cmd("HBLOCK.INFO")
        .arg("lock")
        .query(&mut c)
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(info[1], redis::Value::BulkString(b"held".to_vec()));
    assert_eq!(info[3], redis::Value::BulkString(b"b".to_vec()));
    assert_eq!(info[5], redis::Value::Int(2));
    assert_eq!(joined(waiter).0, Some(2));
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);
    assert_eq!(acquire(&mut c, "lock", "c", &[]), None, "b holds it");
}

#[test]
fn expiry_grants_the_first_waiter_at_the_deadline() {
    let server = Server::with(Options::default().config("notify-keyspace-events", "Ed"));
    let mut c = server.conn();
    let before = Instant::now();
    assert_eq!(
        acquire(&mut c, "lock", "dead", &["INTERVAL", "1500", "MISSES", "1"]),
        Some(1)
    );
    let after = Instant::now();
    let waiter = spawn_acquire(&server, "lock", "standby", &["WAIT", "0"]);
    let (token, granted_at) = joined(waiter);
    assert_eq!(token, Some(2));
    // The server counts whole milliseconds: up to 1 ms less by our clock.
    let earliest_deadline = before + Duration::from_millis(1499);
    let latest_deadline = after + Duration::from_millis(1500);
    assert!(
        granted_at >= earliest_deadline,
        "granted before the lease ended"
    );
    let late = granted_at.saturating_duration_since(latest_deadline);
    eprintln!("expiry-to-grant as seen by the client: {late:?}");
    // A polling standby would look again only after another interval
    // (1.5 s: long enough for the bound to leave a busy host room).
    assert!(
        late < Duration::from_millis(1200),
        "granted {late:?} after the deadline"
    );
    assert_eq!(info_int(&mut c, "lock", "takeovers"), 1);
    assert_eq!(
        counter(&mut c, "expired"),
        1,
        "published without any command on the key"
    );
}

#[test]
fn expiry_is_published_by_the_timer_without_any_command() {
    let server = Server::with(Options::default().config("notify-keyspace-events", "Ed"));
    let mut sub = server.conn();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("__keyevent@0__:hblock.expired").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut c = server.conn();
    let before = Instant::now();
    assert_eq!(
        acquire(&mut c, "lock", "a", &["INTERVAL", "200", "MISSES", "1"]),
        Some(1)
    );
    let after = Instant::now();
    let msg = pubsub.get_message().expect("hblock.expired within 5 s");
    let at = Instant::now();
    assert_eq!(msg.get_payload::<String>().unwrap(), "lock");
    // The server counts whole milliseconds (a grant 0.9 ms into a millisecond
    // is recorded at its start): up to 1 ms less by our clock (seen once).
    assert!(at >= before + Duration::from_millis(199), "published early");
    let late = at.saturating_duration_since(after + Duration::from_millis(200));
    eprintln!("deadline-to-event as seen by the subscriber: {late:?}");
    // Nothing else would publish it (no command touches the key): the
    // bound only keeps a late timer from passing, with room for a busy host.
    assert!(
        late < Duration::from_secs(2),
        "published {late:?} after the deadline"
    );
    assert_eq!(state(&mut c, "lock"), "expired");
    assert_eq!(counter(&mut c, "expired"), 1);
}

#[test]
fn wait_times_out_with_nil_and_counts() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let start = Instant::now();
    let waiter = spawn_acquire(&server, "lock", "b", &["WAIT", "150"]);
    let (reply, at) = joined(waiter);
    assert_eq!(reply, None);
    let waited = at.duration_since(start);
    assert!(
        waited >= Duration::from_millis(150),
        "answered after {waited:?}"
    );
    eprintln!("WAIT 150 answered after {waited:?}");
    assert_eq!(counter(&mut c, "wait_timeouts"), 1);
    assert_eq!(counter(&mut c, "waiting"), 0);
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    // A timed-out waiter is never granted afterwards.
    assert_eq!(release(&mut c, "lock", "a", 1), 1);
    assert_eq!(state(&mut c, "lock"), "free");
}

#[test]
fn waiters_are_served_in_arrival_order_and_never_overtaken() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "holder", &[]), Some(1));
    let mut waiters = Vec::new();
    for (i, owner) in ["w1", "w2", "w3", "w4"].iter().enumerate() {
        waiters.push((
            owner.to_string(),
            spawn_acquire(&server, "lock", owner, &["WAIT", "0"]),
        ));
        wait_for_key_waiters(&mut c, "lock", i as i64 + 1);
    }
    assert_eq!(counter(&mut c, "waiting"), 4);
    // Newcomers, blocking or not, queue behind them.
    assert_eq!(acquire(&mut c, "lock", "rude", &[]), None);
    let late = spawn_acquire(&server, "lock", "late", &["WAIT", "100"]);
    assert_eq!(joined(late).0, None);
    // The holder itself may still renew.
    assert_eq!(acquire(&mut c, "lock", "holder", &[]), Some(1));
    let (mut owner, mut token) = ("holder".to_string(), 1);
    for (expected_owner, waiter) in waiters {
        assert_eq!(release(&mut c, "lock", &owner, token), 1);
        let (got, _) = joined(waiter);
        assert_eq!(got, Some(token + 1), "{expected_owner}");
        assert_eq!(
            info_bytes(&mut c, "lock", "owner"),
            Some(expected_owner.clone().into_bytes())
        );
        owner = expected_owner;
        token += 1;
    }
    assert_eq!(token, 5);
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
}

#[test]
fn multi_and_lua_ignore_wait() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let start = Instant::now();
    let (got,): (Option<i64>,) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.ACQUIRE")
        .arg("lock")
        .arg("b")
        .arg("WAIT")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(got, None);
    let lua: Option<i64> = redis::cmd("EVAL")
        .arg("return redis.call('HBLOCK.ACQUIRE', KEYS[1], 'c', 'WAIT', '0')")
        .arg(1)
        .arg("lock")
        .query(&mut c)
        .unwrap();
    assert_eq!(lua, None);
    assert!(start.elapsed() < Duration::from_secs(5), "answered at once");
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);
    // And a free lock is granted inside MULTI as usual.
    let (t,): (Option<i64>,) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.ACQUIRE")
        .arg("other")
        .arg("b")
        .arg("WAIT")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(t, Some(2), "the data set's next token");
}

fn client_id_of_waiter(server: &Server, key: &str, owner: &str) -> (i64, Waiting) {
    let mut conn = server.conn();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    let key = key.to_string();
    let owner = owner.to_string();
    let handle = std::thread::spawn(move || {
        let reply = redis::cmd("HBLOCK.ACQUIRE")
            .arg(key)
            .arg(owner)
            .arg("WAIT")
            .arg(0)
            .query::<Option<i64>>(&mut conn);
        (reply, Instant::now())
    });
    (id, handle)
}

#[test]
fn disconnected_killed_and_unblocked_waiters_leave_the_queue() {
    let server = Server::start();
    let mut c = server.conn();
    // Held for the whole test, however slowly its four steps run (the
    // default 3 s lease ran out under a busy client and granted a waiter).
    assert_eq!(
        acquire(&mut c, "lock", "a", &["INTERVAL", "600000"]),
        Some(1)
    );

    // 1. A raw connection that blocks, then goes away.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.write_all(
        b"*5\r\n$14\r\nHBLOCK.ACQUIRE\r\n$4\r\nlock\r\n$4\r\ngone\r\n$4\r\nWAIT\r\n$1\r\n0\r\n",
    )
    .unwrap();
    wait_for_key_waiters(&mut c, "lock", 1);
    drop(raw);
    wait_for_key_waiters(&mut c, "lock", 0);

    // 2. CLIENT KILL.
    let (id, killed) = client_id_of_waiter(&server, "lock", "killed");
    wait_for_key_waiters(&mut c, "lock", 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        killed.join().unwrap().0.is_err(),
        "the killed client's connection dropped"
    );
    wait_for_key_waiters(&mut c, "lock", 0);

    // 3. CLIENT UNBLOCK: the waiter gets nil.
    let (id, unblocked) = client_id_of_waiter(&server, "lock", "unblocked");
    wait_for_key_waiters(&mut c, "lock", 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(joined(unblocked).0, None);
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);

    // 4. CLIENT UNBLOCK ... ERROR: Redis's UNBLOCKED error, and the queue is clean.
    let (id, errored) = client_id_of_waiter(&server, "lock", "errored");
    wait_for_key_waiters(&mut c, "lock", 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .arg("ERROR")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    let err = errored.join().unwrap().0.expect_err("UNBLOCKED");
    assert!(error_text(&err).starts_with("UNBLOCKED"), "{err}");
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);

    // Nobody who left is granted: the lock is simply free after release.
    assert_eq!(release(&mut c, "lock", "a", 1), 1);
    assert_eq!(state(&mut c, "lock"), "free");
    assert_eq!(acquire(&mut c, "lock", "next", &[]), Some(2));
}
