//! HBLOCK.ACQUIRE ... BIND ms: a lease released when the connection that
//! acquired it closes (and is not re-bound within the grace).

use crate::support::waiting::{spawn_acquire, wait_for_key_waiters, Waiting};
use crate::support::{
    acquire, counter, digest, error_text, info_bytes, info_field, info_int, state, wait_in_sync,
    Server,
};
use redis::{Connection, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A holder's lease: 60 s, so only the binding can end it in a test.
const LONG: [&str; 2] = ["INTERVAL", "60000"];

fn client_id(c: &mut Connection) -> i64 {
    redis::cmd("CLIENT").arg("ID").query(c).expect("CLIENT ID")
}

fn kill_client(admin: &mut Connection, id: i64) {
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "ID", &id.to_string()])
        .query(admin)
        .expect("CLIENT KILL");
    assert_eq!(killed, 1, "client {id} killed");
}

/// Waits until every lock in `keys` is free (released); false after 5 s.
fn all_freed(c: &mut Connection, keys: &[&str]) -> bool {
    let freed = crate::support::eventually(Duration::from_secs(5), || {
        keys.iter().all(|key| state(c, key) == "free").then_some(())
    });
    freed.is_some()
}

fn bound_acquire(c: &mut Connection, key: &str, owner: &str, grace: &str) -> i64 {
    acquire(c, key, owner, &["INTERVAL", "60000", "BIND", grace]).expect("granted")
}

/// A waiter's token and how long after `from` it arrived.
fn granted(waiter: Waiting, from: Instant) -> (i64, Duration) {
    let (reply, at) = waiter.join().expect("waiter thread");
    let token = reply.expect("ACQUIRE reply").expect("granted, not nil");
    (token, at.saturating_duration_since(from))
}

#[test]
fn bind_0_hands_over_the_moment_the_connection_closes() {
    let server = Server::start();
    let mut admin = server.conn();
    // CLIENT KILL, then a connection simply closed (the process exiting).
    for (round, key) in ["killed", "closed"].into_iter().enumerate() {
        let mut holder = server.conn();
        let token = bound_acquire(&mut holder, key, "a", "0");
        assert_eq!(info_int(&mut admin, key, "bound"), 1);
        let waiter = spawn_acquire(&server, key, "b", &["WAIT", "0"]);
        wait_for_key_waiters(&mut admin, key, 1);
        let from = Instant::now();
        if round == 0 {
            kill_client(&mut admin, client_id(&mut holder));
        } else {
            drop(holder);
        }
        let (next, took) = granted(waiter, from);
        assert!(next > token, "{key}: a new lease ({next} > {token})");
        // At once, not after the 60 s lease.
        assert!(
            took < Duration::from_secs(5),
            "{key}: granted after {took:?}"
        );
        assert_eq!(info_bytes(&mut admin, key, "owner"), Some(b"b".to_vec()));
        assert_eq!(info_int(&mut admin, key, "bound"), 0, "b did not bind");
    }
    assert_eq!(counter(&mut admin, "unbound"), 2);
    assert_eq!(
        counter(&mut admin, "released"),
        2,
        "released as RELEASE would"
    );
}

#[test]
fn bind_0_releases_when_the_holding_process_is_killed() {
    let server = Server::start();
    let mut admin = server.conn();
    let port = server.port;
    // A real process holding the connection: bash's /dev/tcp, then sleep.
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}; \
         printf '*7\\r\\n$14\\r\\nHBLOCK.ACQUIRE\\r\\n$4\\r\\nproc\\r\\n$1\\r\\np\\r\\n\
$8\\r\\nINTERVAL\\r\\n$5\\r\\n60000\\r\\n$4\\r\\nBIND\\r\\n$1\\r\\n0\\r\\n' >&3; \
         read -r line <&3; echo \"$line\"; exec sleep 60 <&3"
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash");
    let mut line = String::new();
    if let Some(out) = child.stdout.as_mut() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let granted_to_child = line.trim_start().starts_with(':');
    assert!(granted_to_child, "the process got a token: {line:?}");
    assert_eq!(info_int(&mut admin, "proc", "bound"), 1);
    let waiter = spawn_acquire(&server, "proc", "w", &["WAIT", "0"]);
    wait_for_key_waiters(&mut admin, "proc", 1);
    let from = Instant::now();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let (_, took) = granted(waiter, from);
    assert!(took < Duration::from_secs(5), "granted after {took:?}");
    assert_eq!(counter(&mut admin, "unbound"), 1);
}

#[test]
fn a_rebind_within_the_grace_keeps_the_lease_and_none_releases_after_it() {
    let server = Server::start();
    let mut admin = server.conn();
    let mut first = server.conn();
    let token = bound_acquire(&mut first, "k", "a", "500");
    kill_client(&mut admin, client_id(&mut first));
    // A new connection of the same owner re-binds: same lease, same token.
    let mut second = server.conn();
    assert_eq!(bound_acquire(&mut second, "k", "a", "500"), token);
    // Past the first connection's grace: still held, still bound.
    let unchanged: Value = redis::cmd("HBLOCK.WATCH")
        .arg(&["k", "SEEN", &token.to_string(), "TIMEOUT", "800"])
        .query(&mut admin)
        .expect("WATCH");
    assert_ne!(unchanged, Value::Nil);
    assert_eq!(state(&mut admin, "k"), "held");
    assert_eq!(info_int(&mut admin, "k", "token"), token);
    assert_eq!(info_int(&mut admin, "k", "bound"), 1);
    // The second connection closes and nobody re-binds: released after 500 ms.
    let closed = Instant::now();
    drop(second);
    let _: Value = redis::cmd("HBLOCK.WATCH")
        .arg(&["k", "SEEN", &token.to_string(), "TIMEOUT", "10000"])
        .query(&mut admin)
        .expect("WATCH");
    let took = closed.elapsed();
    assert_eq!(state(&mut admin, "k"), "free");
    assert!(
        took >= Duration::from_millis(499),
        "released after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "released after {took:?}");
    assert_eq!(info_int(&mut admin, "k", "token"), token, "token kept");
    assert_eq!(counter(&mut admin, "unbound"), 1);
}

#[test]
fn a_reacquire_without_bind_leaves_the_binding_where_it_is() {
    let server = Server::start();
    let mut admin = server.conn();
    let mut bound = server.conn();
    let token = bound_acquire(&mut bound, "k", "a", "0");
    let mut other = server.conn();
    assert_eq!(acquire(&mut other, "k", "a", &LONG), Some(token));
    drop(other);
    assert_eq!(bound_acquire(&mut admin, "x", "x", "0"), token + 1);
    // Closing `other` changed nothing (admin's ACQUIRE of x ran after it).
    assert_eq!(state(&mut admin, "k"), "held");
    kill_client(&mut admin, client_id(&mut bound));
    assert!(
        all_freed(&mut admin, &["k"]),
        "the bound connection's close released it"
    );
}

#[test]
fn a_bound_lease_still_expires_without_beats() {
    let server = Server::start();
    let mut admin = server.conn();
    let mut holder = server.conn();
    let token = acquire(
        &mut holder,
        "k",
        "a",
        &["INTERVAL", "50", "MISSES", "2", "BIND", "100"],
    )
    .unwrap();
    let _: Value = redis::cmd("HBLOCK.WATCH")
        .arg(&["k", "SEEN", &token.to_string(), "TIMEOUT", "10000"])
        .query(&mut admin)
        .expect("WATCH");
    assert_eq!(state(&mut admin, "k"), "expired");
    assert_eq!(info_int(&mut admin, "k", "bound"), 0);
    // Its connection closing later releases nothing (the lease is over).
    drop(holder);
    assert_eq!(acquire(&mut admin, "k", "b", &LONG), Some(token + 1));
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(info_bytes(&mut admin, "k", "owner"), Some(b"b".to_vec()));
    assert_eq!(counter(&mut admin, "unbound"), 0);
}

#[test]
fn bind_errors_change_nothing() {
    let server = Server::start();
    let mut c = server.conn();
    // The bound named is the lease's (default terms: 1000 ms * 3), for any
    // bad value.
    let cases: [(&[&str], &str); 7] = [
        (
            &["BIND", "3001"],
            "ERR BIND must be an integer from 0 to 3000",
        ),
        (
            &["BIND", "-1"],
            "ERR BIND must be an integer from 0 to 3000",
        ),
        (&["BIND", "x"], "ERR BIND must be an integer from 0 to 3000"),
        (
            &["BIND", "864000000001"],
            "ERR BIND must be an integer from 0 to 3000",
        ),
        (
            &["BIND", "-1", "INTERVAL", "10", "MISSES", "2"],
            "ERR BIND must be an integer from 0 to 20",
        ),
        (&["BIND"], "ERR syntax error"),
        (&["BIND", "1", "BIND", "1"], "ERR syntax error"),
    ];
    for (opts, want) in cases {
        let err = redis::cmd("HBLOCK.ACQUIRE")
            .arg("k")
            .arg("a")
            .arg(opts)
            .query::<Value>(&mut c)
            .expect_err("refused");
        assert!(error_text(&err).starts_with(want), "{opts:?}: {err}");
    }
    let exists: i64 = redis::cmd("EXISTS").arg("k").query(&mut c).unwrap();
    assert_eq!(exists, 0, "nothing created");
    // The grace is checked against the lease this call leaves: the holder's
    // terms when it renews. Terms (20 s) that cannot run out between these
    // calls, whose bound differs from the default terms' 3000.
    let token = acquire(&mut c, "k", "a", &["INTERVAL", "10000", "MISSES", "2"]).unwrap();
    let err = redis::cmd("HBLOCK.ACQUIRE")
        .arg(&["k", "a", "BIND", "20001"])
        .query::<Value>(&mut c)
        .expect_err("longer than the lease");
    assert_eq!(
        error_text(&err),
        "ERR BIND must be an integer from 0 to 20000"
    );
    let err = redis::cmd("HBLOCK.ACQUIRE")
        .arg(&["k", "a", "BIND", "-1"])
        .query::<Value>(&mut c)
        .expect_err("negative");
    assert_eq!(
        error_text(&err),
        "ERR BIND must be an integer from 0 to 20000"
    );
    assert_eq!(info_int(&mut c, "k", "bound"), 0);
    assert_eq!(info_int(&mut c, "k", "beats"), 0, "not renewed");
    let renewed = acquire(&mut c, "k", "a", &["BIND", "200", "INTERVAL", "60000"]);
    assert_eq!(renewed, Some(token));
    assert_eq!(info_int(&mut c, "k", "bound"), 1);
}

#[test]
fn bind_in_multi_and_scripts_binds_the_calling_client() {
    let server = Server::start();
    let mut admin = server.conn();
    let mut c = server.conn();
    let (token,): (i64,) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.ACQUIRE")
        .arg(&["m", "a", "INTERVAL", "60000", "BIND", "0"])
        .query(&mut c)
        .expect("MULTI");
    assert_eq!(info_int(&mut admin, "m", "bound"), 1);
    let script = "return redis.call('HBLOCK.ACQUIRE', KEYS[1], 'a', 'INTERVAL', 60000, 'BIND', 0)";
    let valkey = info_field(&mut admin, "server", "valkey_version").is_some();
    let in_script = redis::cmd("EVAL")
        .arg(&[script, "1", "s"])
        .query::<i64>(&mut c);
    if valkey {
        assert!(in_script.expect("bound inside EVAL") > token);
        assert_eq!(info_int(&mut admin, "s", "bound"), 1);
    } else {
        // Redis 7.0 does not tell modules who runs a script.
        let err = in_script.expect_err("refused on Redis 7.0");
        assert!(error_text(&err).contains("BIND inside a script"), "{err}");
        let exists: i64 = redis::cmd("EXISTS").arg("s").query(&mut admin).unwrap();
        assert_eq!(exists, 0, "nothing created");
    }
    kill_client(&mut admin, client_id(&mut c));
    let bound: &[&str] = if valkey { &["m", "s"] } else { &["m"] };
    assert!(
        all_freed(&mut admin, bound),
        "the caller's close released what it bound"
    );
}

#[test]
fn a_waiter_with_bind_is_bound_when_granted_and_released_if_gone() {
    let server = Server::start();
    let mut admin = server.conn();
    let token = acquire(&mut admin, "w", "a", &LONG).unwrap();
    let waiting = server.conn();
    let waiter = std::thread::spawn(move || {
        let mut waiting = waiting;
        redis::cmd("HBLOCK.ACQUIRE")
            .arg(&["w", "b", "INTERVAL", "60000", "WAIT", "0", "BIND", "0"])
            .query::<Option<i64>>(&mut waiting)
            .map(|t| (t, waiting))
    });
    wait_for_key_waiters(&mut admin, "w", 1);
    let third = spawn_acquire(&server, "w", "c", &["WAIT", "0"]);
    wait_for_key_waiters(&mut admin, "w", 2);
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(&["w", "a", &token.to_string()])
        .query(&mut admin)
        .unwrap();
    let (got, waiting) = waiter.join().unwrap().expect("granted");
    assert_eq!(got, Some(token + 1));
    assert_eq!(info_int(&mut admin, "w", "bound"), 1, "bound on grant");
    drop(waiting);
    let (next, _) = granted(third, Instant::now());
    assert!(next > token + 1);
    // Granted and killed in the same pass: the grant is released at once.
    let t3 = next;
    let mut waiting = server.conn();
    let id = client_id(&mut waiting);
    let gone = std::thread::spawn(move || {
        redis::cmd("HBLOCK.ACQUIRE")
            .arg(&["w", "d", "INTERVAL", "60000", "WAIT", "0", "BIND", "0"])
            .query::<Option<i64>>(&mut waiting)
    });
    wait_for_key_waiters(&mut admin, "w", 1);
    let last = spawn_acquire(&server, "w", "e", &["WAIT", "0"]);
    wait_for_key_waiters(&mut admin, "w", 2);
    let _: Vec<Value> = redis::pipe()
        .cmd("HBLOCK.RELEASE")
        .arg(&["w", "c", &t3.to_string()])
        .cmd("CLIENT")
        .arg(&["KILL", "ID", &id.to_string()])
        .query(&mut admin)
        .expect("release and kill in one pass");
    let _ = gone.join();
    let (to_e, _) = granted(last, Instant::now());
    assert!(to_e > t3 + 1, "d's grant released, e granted after it");
    assert_eq!(info_bytes(&mut admin, "w", "owner"), Some(b"e".to_vec()));
}

#[test]
fn bindings_are_not_replicated_and_end_with_a_promotion() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    let mut holder = master.conn();
    let token = bound_acquire(&mut holder, "k", "a", "0");
    let waiter = master.conn();
    let waiting = std::thread::spawn(move || {
        let mut waiter = waiter;
        let t = redis::cmd("HBLOCK.ACQUIRE")
            .arg(&["k", "b", "INTERVAL", "60000", "WAIT", "0", "BIND", "0"])
            .query::<Option<i64>>(&mut waiter);
        (t, waiter)
    });
    wait_for_key_waiters(&mut m, "k", 1);
    kill_client(&mut m, client_id(&mut holder));
    let (t, _waiter) = waiting.join().unwrap();
    assert!(t.expect("granted").expect("a token") > token);
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r), "the replica holds the same");
    assert_eq!(info_int(&mut m, "k", "bound"), 1);
    assert_eq!(info_int(&mut r, "k", "bound"), 0, "not replicated");
    let _: () = redis::cmd("REPLICAOF")
        .arg(&["NO", "ONE"])
        .query(&mut r)
        .unwrap();
    assert_eq!(
        info_int(&mut r, "k", "bound"),
        0,
        "a plain lease after promotion"
    );
    assert_eq!(state(&mut r, "k"), "held");
}
