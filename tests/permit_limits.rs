//! What a LIMIT can and cannot change (the permits review): a missing key
//! with waiters has their limit, so a caller with another LIMIT cannot be
//! granted next to them (DEL then ACQUIRE inside MULTI or a script); an
//! ACQUIRE that answers an error changes no limit.

use crate::support::raw::{Raw, Value as RawValue};
use crate::support::waiting::{joined, spawn_acquire, wait_for_key_waiters, Waiting};
use crate::support::{acquire, call, digest, error_of, info_int, Server};
use redis::{ConnectionLike, Value};
use std::time::Duration;

const MISMATCH_1_3: &str = "LIMIT 1 does not match the lock's limit 3";

fn three_holders_and_a_waiter(server: &Server, c: &mut impl ConnectionLike) -> Waiting {
    for owner in ["a", "b", "c"] {
        let opts = ["INTERVAL", "60000", "LIMIT", "3"];
        assert!(acquire(c, "sem", owner, &opts).is_some(), "{owner}");
    }
    let w = spawn_acquire(
        server,
        "sem",
        "w",
        &["INTERVAL", "60000", "LIMIT", "3", "WAIT", "10000"],
    );
    wait_for_key_waiters(c, "sem", 1);
    w
}

/// HBLOCK.HOLDERS' owners, in token order.
fn holder_owners(c: &mut impl ConnectionLike) -> Vec<Vec<u8>> {
    let reply: Vec<Vec<Value>> = redis::cmd("HBLOCK.HOLDERS").arg("sem").query(c).unwrap();
    reply
        .iter()
        .map(|h| match &h[1] {
            Value::BulkString(b) => b.clone(),
            other => panic!("owner {other:?}"),
        })
        .collect()
}

#[test]
fn del_then_acquire_in_multi_does_not_take_a_permit_beside_the_waiters() {
    let server = Server::start();
    let mut c = server.conn();
    let w = three_holders_and_a_waiter(&server, &mut c);
    let mut raw = Raw::connect(server.port);
    raw.read_timeout(Duration::from_secs(10));
    for cmd in [
        &["MULTI"][..],
        &["DEL", "sem"],
        &["HBLOCK.ACQUIRE", "sem", "z"],
        &["HBLOCK.ACQUIRE", "sem", "y", "LIMIT", "3"],
    ] {
        raw.send(cmd);
        raw.value();
    }
    raw.send(&["EXEC"]);
    let RawValue::Array(replies) = raw.value() else {
        panic!("EXEC");
    };
    assert_eq!(replies[0], RawValue::Int(1), "DEL");
    let z = RawValue::Error(format!("ERR {MISMATCH_1_3}"));
    assert_eq!(replies[1], z, "z's ACQUIRE without LIMIT");
    assert!(
        matches!(replies[2], RawValue::Int(_)),
        "y with LIMIT 3: {:?}",
        replies[2]
    );
    let granted = joined(w)
        .0
        .expect("the waiter is granted the recreated lock");
    assert!(granted > 0);
    assert_eq!(holder_owners(&mut c), [b"w".to_vec(), b"y".to_vec()]);
    assert_eq!(info_int(&mut c, "sem", "limit"), 3);
}

#[test]
fn del_then_acquire_in_a_script_does_not_take_a_permit_beside_the_waiters() {
    let server = Server::start();
    let mut c = server.conn();
    let w = three_holders_and_a_waiter(&server, &mut c);
    let script = "redis.call('DEL', KEYS[1]) \
        local r = redis.pcall('HBLOCK.ACQUIRE', KEYS[1], 'z') \
        if type(r) == 'table' and r.err then return r.err end \
        return 'granted'";
    let reply: String = call(&mut c, &[b"EVAL", script.as_bytes(), b"1", b"sem"]).unwrap();
    assert!(reply.contains(MISMATCH_1_3), "{reply}");
    assert!(
        joined(w).0.is_some(),
        "the waiter is granted the recreated lock"
    );
    assert_eq!(holder_owners(&mut c), [b"w".to_vec()]);
    assert_eq!(info_int(&mut c, "sem", "limit"), 3);
}

#[test]
fn an_acquire_that_answers_an_error_changes_no_limit() {
    let server = Server::start();
    let mut c = server.conn();
    let t = acquire(&mut c, "sem", "a", &[]).unwrap();
    let _: i64 = call(
        &mut c,
        &[b"HBLOCK.RELEASE", b"sem", b"a", t.to_string().as_bytes()],
    )
    .unwrap();
    let before = digest(&mut c);
    let bad_bind = error_of(
        &mut c,
        &[
            b"HBLOCK.ACQUIRE",
            b"sem",
            b"b",
            b"LIMIT",
            b"5",
            b"BIND",
            b"999999",
        ],
    );
    assert!(bad_bind.starts_with("ERR BIND "), "{bad_bind}");
    assert_eq!(info_int(&mut c, "sem", "limit"), 1);
    assert_eq!(digest(&mut c), before, "nothing changed");
    // The same call with a BIND that fits: granted, and the limit with it.
    let opts = ["LIMIT", "5", "BIND", "1000"];
    assert!(acquire(&mut c, "sem", "b", &opts).is_some());
    assert_eq!(info_int(&mut c, "sem", "limit"), 5);
}
