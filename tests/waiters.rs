//! HBLOCK.WAITERS: who waits for a lock, in queue order, with how long they
//! waited, their WAIT left and their connection id.

use crate::support::waiting::wait_for_key_waiters;
use crate::support::{acquire, error_of, eventually, Server};
use redis::Value;
use std::thread::JoinHandle;
use std::time::Duration;

/// A blocking ACQUIRE on its own connection: its client id and the thread
/// that returns its reply.
fn waiter(
    server: &Server,
    key: &str,
    owner: &str,
    wait_ms: u64,
) -> (i64, JoinHandle<redis::RedisResult<Option<i64>>>) {
    let mut conn = server.conn();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    let (key, owner) = (key.to_string(), owner.to_string());
    let thread = std::thread::spawn(move || {
        redis::cmd("HBLOCK.ACQUIRE")
            .arg(&key)
            .arg(&owner)
            .arg("WAIT")
            .arg(wait_ms)
            .query::<Option<i64>>(&mut conn)
    });
    (id, thread)
}

/// One waiter of a RESP2 reply: (owner, waited, timeout, client), after
/// checking the field names and their order.
fn entry(value: &Value) -> (String, i64, i64, i64) {
    let Value::Array(fields) = value else {
        panic!("an entry is a flat array in RESP2: {value:?}");
    };
    let names: Vec<String> = fields
        .iter()
        .step_by(2)
        .map(|v| match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("field name {other:?}"),
        })
        .collect();
    assert_eq!(names, ["owner", "waited", "timeout", "client"]);
    let int = |i: usize| match fields[i] {
        Value::Int(n) => n,
        ref other => panic!("field {i}: {other:?}"),
    };
    let owner = match &fields[1] {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("owner {other:?}"),
    };
    (owner, int(3), int(5), int(7))
}

fn waiters(c: &mut redis::Connection, key: &str, extra: &[&str]) -> Vec<(String, i64, i64, i64)> {
    let reply: Value = redis::cmd("HBLOCK.WAITERS")
        .arg(key)
        .arg(extra)
        .query(c)
        .unwrap();
    match reply {
        Value::Array(entries) => entries.iter().map(entry).collect(),
        other => panic!("WAITERS {key}: {other:?}"),
    }
}

#[test]
fn waiters_in_queue_order_with_their_wait_and_connection() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "lock", "holder", &["INTERVAL", "60000"]),
        Some(1)
    );
    assert_eq!(waiters(&mut c, "lock", &[]), [], "nobody waits yet");
    let (first_id, first) = waiter(&server, "lock", "standby-1", 0);
    wait_for_key_waiters(&mut c, "lock", 1);
    let (second_id, second) = waiter(&server, "lock", "standby-2", 30_000);
    wait_for_key_waiters(&mut c, "lock", 2);

    let listed = waiters(&mut c, "lock", &[]);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (owner, waited, timeout, client) = listed[0].clone();
    assert_eq!(
        (owner.as_str(), timeout, client),
        ("standby-1", -1, first_id)
    );
    assert!(waited >= 0, "{waited}");
    let (owner, _, timeout, client) = listed[1].clone();
    assert_eq!((owner.as_str(), client), ("standby-2", second_id));
    assert!((1..=30_000).contains(&timeout), "WAIT left: {timeout}");
    assert!(listed[0].1 >= listed[1].1, "the first has waited longer");

    // `waited` grows and `timeout` shrinks as time passes.
    let later = eventually(Duration::from_secs(5), || {
        let now = waiters(&mut c, "lock", &[]);
        (now[0].1 > waited && now[1].2 < timeout).then_some(now)
    });
    assert!(later.is_some(), "waited never grew past {waited}");

    // COUNT limits the list to the head of the queue.
    let head = waiters(&mut c, "lock", &["COUNT", "1"]);
    assert_eq!(head.len(), 1);
    assert_eq!(head[0].0, "standby-1");
    assert_eq!(waiters(&mut c, "lock", &["count", "100"]).len(), 2);

    // The client id is the one CLIENT LIST shows, blocked in ACQUIRE.
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(first_id)
        .query(&mut c)
        .unwrap();
    assert!(
        list.contains(&format!("id={first_id} ")) && list.contains("cmd=hblock.acquire"),
        "{list}"
    );
    // ... and CLIENT KILL of it takes it out of the queue.
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(first_id)
        .query(&mut c)
        .unwrap();
    assert_eq!(killed, 1);
    assert!(first.join().unwrap().is_err(), "its connection was closed");
    let left = waiters(&mut c, "lock", &[]);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!((left[0].0.as_str(), left[0].3), ("standby-2", second_id));

    // Granted: it leaves the list.
    let released: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(&["lock", "holder", "1"])
        .query(&mut c)
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(second.join().unwrap().unwrap(), Some(2));
    assert_eq!(waiters(&mut c, "lock", &[]), []);
}

#[test]
fn waiters_errors_and_missing_keys() {
    let server = Server::start();
    let mut c = server.conn();
    let none: Value = redis::cmd("HBLOCK.WAITERS")
        .arg("missing")
        .query(&mut c)
        .unwrap();
    assert_eq!(none, Value::Nil, "nil for a missing key");
    let _: () = redis::cmd("SET")
        .arg("text")
        .arg("v")
        .query(&mut c)
        .unwrap();
    assert!(error_of(&mut c, &[b"HBLOCK.WAITERS", b"text"]).starts_with("WRONGTYPE"));
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    for bad in ["0", "-1", "x", "1.5", ""] {
        let err = error_of(
            &mut c,
            &[b"HBLOCK.WAITERS", b"lock", b"COUNT", bad.as_bytes()],
        );
        assert!(
            err.starts_with("ERR COUNT must be an integer from 1 to"),
            "COUNT {bad:?}: {err}"
        );
    }
    for args in [
        vec![&b"HBLOCK.WAITERS"[..], b"lock", b"COUNT"],
        vec![b"HBLOCK.WAITERS", b"lock", b"LIMIT", b"1"],
        vec![b"HBLOCK.WAITERS", b"lock", b"COUNT", b"1", b"COUNT", b"2"],
    ] {
        assert_eq!(error_of(&mut c, &args), "ERR syntax error", "{args:?}");
    }
    assert!(error_of(&mut c, &[b"HBLOCK.WAITERS"]).contains("wrong number of arguments"));
    // COUNT is checked before the key is looked at.
    assert!(error_of(&mut c, &[b"HBLOCK.WAITERS", b"text", b"COUNT", b"0"]).starts_with("ERR"));
    assert_eq!(
        waiters(&mut c, "lock", &["COUNT", "9223372036854775807"]),
        []
    );
}

#[test]
fn waiters_is_a_map_in_resp3() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "lock", "a", &["INTERVAL", "60000"]),
        Some(1)
    );
    let (id, thread) = waiter(&server, "lock", "b", 0);
    wait_for_key_waiters(&mut c, "lock", 1);
    let reply: Value = redis::cmd("HBLOCK.WAITERS")
        .arg("lock")
        .query(&mut server.conn_resp3())
        .unwrap();
    let Value::Array(entries) = reply else {
        panic!("an array of entries: {reply:?}");
    };
    let [Value::Map(pairs)] = entries.as_slice() else {
        panic!("one map: {entries:?}");
    };
    let names: Vec<Value> = pairs.iter().map(|(k, _)| k.clone()).collect();
    let expected: Vec<Value> = ["owner", "waited", "timeout", "client"]
        .iter()
        .map(|n| Value::BulkString(n.as_bytes().to_vec()))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(pairs[0].1, Value::BulkString(b"b".to_vec()));
    assert_eq!(pairs[2].1, Value::Int(-1));
    assert_eq!(pairs[3].1, Value::Int(id));
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(&["lock", "a", "1"])
        .query(&mut c)
        .unwrap();
    assert_eq!(thread.join().unwrap().unwrap(), Some(2));
}

/// The queue lives in the master's memory: a replica answers its own,
/// empty one.
#[test]
fn a_replica_answers_its_own_empty_queue() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let mut m = master.conn();
    let mut r = replica.conn();
    assert_eq!(
        acquire(&mut m, "lock", "a", &["INTERVAL", "60000"]),
        Some(1)
    );
    let (_, thread) = waiter(&master, "lock", "b", 0);
    wait_for_key_waiters(&mut m, "lock", 1);
    crate::support::wait_in_sync(&mut m, &mut r);
    assert_eq!(waiters(&mut m, "lock", &[]).len(), 1);
    assert_eq!(waiters(&mut r, "lock", &[]), [], "the replica's own queue");
    let none: Value = redis::cmd("HBLOCK.WAITERS")
        .arg("missing")
        .query(&mut r)
        .unwrap();
    assert_eq!(none, Value::Nil);
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(&["lock", "a", "1"])
        .query(&mut m)
        .unwrap();
    assert_eq!(thread.join().unwrap().unwrap(), Some(2));
}

/// Read-only: a user granted only HBLOCK.WAITERS (or, where the server has
/// module ACL categories, `+@read`) can list waiters but not take a lock;
/// a read-only key pattern covers it.
#[test]
fn waiters_is_read_only_for_acls() {
    let server = Server::start();
    let mut admin = server.conn();
    assert_eq!(acquire(&mut admin, "lock", "a", &[]), Some(1));
    let flags: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("HBLOCK.WAITERS")
        .query(&mut admin)
        .unwrap();
    let text = format!("{flags:?}");
    assert!(
        text.contains("readonly") && !text.contains("\"write\""),
        "{text}"
    );
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "viewer", "on", ">pw", "%R~*", "+hblock.waiters"])
        .query(&mut admin)
        .unwrap();
    let mut viewer = server.conn_as("viewer", "pw");
    assert_eq!(waiters(&mut viewer, "lock", &[]), []);
    assert!(error_of(&mut viewer, &[b"HBLOCK.ACQUIRE", b"lock2", b"o"]).starts_with("NOPERM"));

    let version = crate::support::info_field(&mut admin, "server", "redis_version").unwrap();
    let valkey = crate::support::info_field(&mut admin, "server", "valkey_version").is_some();
    if valkey || version.as_str() >= "7.2" {
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", "reader", "on", ">pw", "~*", "+@read"])
            .query(&mut admin)
            .unwrap();
        let mut reader = server.conn_as("reader", "pw");
        assert_eq!(waiters(&mut reader, "lock", &[]), []);
        assert!(error_of(&mut reader, &[b"HBLOCK.ACQUIRE", b"lock2", b"o"]).starts_with("NOPERM"));
    }
}
