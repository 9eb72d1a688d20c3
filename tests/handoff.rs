//! A grant and CLIENT UNBLOCK / CLIENT KILL in the same event-loop pass:
//! a waiter gets exactly one reply, and holds the lease exactly when that
//! reply is its token. A watcher woken at the moment of a CLIENT UNBLOCK
//! gets exactly one reply too.

use crate::support::raw::{Raw, Value as RawValue};
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

/// A watcher on its own connection: its client id, and the thread that
/// returns (reply, the reply to a PING sent after it).
fn blocked_watcher(
    server: &Server,
    key: &str,
    seen: i64,
) -> (
    i64,
    std::thread::JoinHandle<(redis::RedisResult<Value>, String)>,
) {
    let mut conn = server.conn();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("read timeout");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    let (key, seen) = (key.to_string(), seen.to_string());
    let thread = std::thread::spawn(move || {
        let reply = redis::cmd("HBLOCK.WATCH")
            .arg(&[&key, "SEEN", &seen])
            .query::<Value>(&mut conn);
        let pong = redis::cmd("PING")
            .arg("after")
            .query::<String>(&mut conn)
            .unwrap_or_else(|e| format!("error: {e}"));
        (reply, pong)
    });
    (id, thread)
}

/// Redis 7.0 skips the callbacks of a client the module has just unblocked:
/// without the filter, a watcher woken by the RELEASE got no reply at all.
#[test]
fn client_unblock_of_a_just_woken_watcher_lets_it_read_its_reply() {
    let server = Server::start();
    let mut m = server.conn();
    let mut raw = Raw::connect(server.port);
    raw.read_timeout(std::time::Duration::from_secs(5));
    for mode in [None, Some("TIMEOUT"), Some("ERROR")] {
        let key = format!("w:{mode:?}");
        let token = acquire(&mut m, &key, "A", &["INTERVAL", "60000"]).unwrap();
        let (id, watcher) = blocked_watcher(&server, &key, token);
        wait_for_blocked(&mut m, 1);
        let id = id.to_string();
        let mut unblock = vec!["CLIENT", "UNBLOCK", id.as_str()];
        unblock.extend(mode);
        // One packet: both commands run in the same event-loop pass.
        let token_text = token.to_string();
        let release = vec!["HBLOCK.RELEASE", key.as_str(), "A", token_text.as_str()];
        raw.send_all(&[release, unblock]);
        assert_eq!(
            (raw.value(), raw.value()),
            (RawValue::Int(1), RawValue::Int(0)),
            "{mode:?}: the watcher was woken: nothing left to unblock"
        );
        let (reply, pong) = watcher.join().unwrap();
        let reply = reply.unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let Value::Array(fields) = reply else {
            panic!("{mode:?}: {reply:?}");
        };
        assert_eq!(fields.get(1), Some(&Value::BulkString(b"free".to_vec())));
        assert_eq!(pong, "after", "{mode:?}: one reply, in order");
    }
}

fn wait_for_blocked(c: &mut Connection, n: u64) {
    let blocked = crate::support::eventually(std::time::Duration::from_secs(5), || {
        let now: u64 = crate::support::info_field(c, "clients", "blocked_clients")?
            .parse()
            .ok()?;
        (now == n).then_some(())
    });
    assert!(blocked.is_some(), "never {n} blocked clients");
}
