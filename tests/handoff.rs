//! A grant and CLIENT UNBLOCK / CLIENT KILL in the same event-loop pass:
//! a waiter gets exactly one reply, and holds the lease exactly when that
//! reply is its token.

use crate::support::waiting::{blocked_waiter, wait_for_waiters};
use crate::support::{acquire, info_bytes, info_int, Server};
use redis::{Connection, Value};

// ---- 3. CLIENT UNBLOCK / CLIENT KILL at the moment of a grant ----

fn release_then(m: &mut Connection, key: &str, token: i64, then: &[&str]) -> Vec<Value> {
    let mut pipe = redis::pipe();
    pipe.cmd("HBLOCK.RELEASE").arg(key).arg("A").arg(token);
    let mut cmd = redis::cmd(then[0]);
    for arg in &then[1..] {
        cmd.arg(*arg);
    }
    pipe.add_command(cmd);
    pipe.query(m).expect("pipeline")
}

#[test]
fn client_unblock_of_a_just_granted_waiter_lets_it_read_its_token() {
    let server = Server::start();
    let mut m = server.conn();
    for mode in [None, Some("TIMEOUT"), Some("ERROR")] {
        let key = format!("u:{mode:?}");
        let token = acquire(&mut m, &key, "A", &["INTERVAL", "60000"]).unwrap();
        let (id, waiter) = blocked_waiter(&server, &key, "W");
        wait_for_waiters(&mut m, 1);
        let id = id.to_string();
        let mut unblock = vec!["CLIENT", "UNBLOCK", id.as_str()];
        unblock.extend(mode);
        let replies = release_then(&mut m, &key, token, &unblock);
        // W was served in the same pass: there was nothing left to unblock.
        assert_eq!(replies, [Value::Int(1), Value::Int(0)], "{mode:?}");
        let (reply, pong) = waiter.join().unwrap();
        assert_eq!(reply.unwrap(), Value::Int(token + 1), "{mode:?}");
        assert_eq!(pong, "after", "{mode:?}: one reply, in order");
        assert_eq!(info_bytes(&mut m, &key, "owner"), Some(b"W".to_vec()));
    }
    // A waiter still queued is unblocked as usual.
    let token = acquire(&mut m, "q", "A", &["INTERVAL", "60000"]).unwrap();
    let (id, waiter) = blocked_waiter(&server, "q", "W");
    wait_for_waiters(&mut m, 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .query(&mut m)
        .unwrap();
    assert_eq!(n, 1);
    let (reply, pong) = waiter.join().unwrap();
    assert_eq!((reply.unwrap(), pong.as_str()), (Value::Nil, "after"));
    assert_eq!(info_int(&mut m, "q", "token"), token);
}

#[test]
fn a_waiter_killed_before_reading_its_grant_hands_the_lock_on() {
    let server = Server::start();
    let mut m = server.conn();
    let token = acquire(&mut m, "k", "A", &["INTERVAL", "60000"]).unwrap();
    let (first, _gone) = blocked_waiter(&server, "k", "W1");
    wait_for_waiters(&mut m, 1);
    let (_, second) = blocked_waiter(&server, "k", "W2");
    wait_for_waiters(&mut m, 2);
    let id = first.to_string();
    let replies = release_then(&mut m, "k", token, &["CLIENT", "KILL", "ID", &id]);
    assert_eq!(replies, [Value::Int(1), Value::Int(1)]);
    // W1 never learnt its token: that grant is undone and W2 is served at
    // once, not after W1's 60 s lease.
    let (reply, pong) = second.join().unwrap();
    assert_eq!(reply.unwrap(), Value::Int(token + 2));
    assert_eq!(pong, "after");
    assert_eq!(info_bytes(&mut m, "k", "owner"), Some(b"W2".to_vec()));
}
