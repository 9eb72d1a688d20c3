//! The module's own command dispatch (#30): handlers borrow the client's
//! arguments (views on the stack up to 16, retained copies beyond), and the
//! lock writes read a role cached from the role-change event. These tests
//! pin what that must not change: arguments on both sides of the 16-argument
//! boundary, nothing retained past a call, and every role change seen.

use crate::support::{
    acquire, call, error_of, eventually, info_bytes, info_field, lock_writes_refused, used_memory,
    wait_in_sync, Options, Server,
};
use redis::Value;
use std::time::Duration;

/// `HBLOCK.FENCED lock o token MSET` with `pairs` key/value pairs: binary
/// keys and values, empty ones among them.
fn fenced_mset(token: &str, pairs: usize, round: u8) -> Vec<Vec<u8>> {
    let mut args: Vec<Vec<u8>> = ["HBLOCK.FENCED", "lock", "o", token, "MSET"]
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    for i in 0..pairs {
        args.push(format!("k{i}\0\u{ff}").into_bytes());
        // Value i of round r: i bytes of (i + r); the first is empty.
        args.push(vec![(i as u8).wrapping_add(round); i]);
    }
    args
}

#[test]
fn fenced_arguments_on_both_sides_of_the_sixteen_argument_boundary() {
    let server = Server::start();
    let mut c = server.conn();
    let token = acquire(&mut c, "lock", "o", &["INTERVAL", "600000"])
        .expect("granted")
        .to_string();
    let round = |c: &mut redis::Connection, r: u8| {
        // 5 + 2 * pairs arguments: 5..=45, across the 16 (stack) boundary.
        for pairs in 0..=20 {
            let args = fenced_mset(&token, pairs, r);
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            if pairs == 0 {
                assert_eq!(
                    error_of(c, &refs),
                    "ERR wrong number of arguments for 'mset' command",
                    "{pairs} pairs"
                );
                continue;
            }
            let reply: String = call(c, &refs).unwrap_or_else(|e| panic!("{pairs} pairs: {e}"));
            assert_eq!(reply, "OK", "{pairs} pairs");
            // Every argument reached the wrapped command intact, the last
            // ones (beyond 16) as well as the first.
            for i in [0, pairs / 2, pairs - 1] {
                let key = format!("k{i}\0\u{ff}").into_bytes();
                let got: Vec<u8> = call(c, &[b"GET", &key]).expect("GET");
                assert_eq!(
                    got,
                    vec![(i as u8).wrapping_add(r); i],
                    "{pairs} pairs, key {i}"
                );
            }
            // Keys reported for COMMAND GETKEYS: the lock, then each key.
            let keys: Vec<Vec<u8>> = {
                let mut getkeys: Vec<&[u8]> = vec![b"COMMAND", b"GETKEYS"];
                getkeys.extend(&refs);
                call(c, &getkeys).expect("COMMAND GETKEYS")
            };
            assert_eq!(keys.len(), 1 + pairs, "{pairs} pairs");
            assert_eq!(keys[0], b"lock");
            assert_eq!(keys[pairs], format!("k{}\0\u{ff}", pairs - 1).into_bytes());
        }
        // 14..=18 arguments, 16 and 17 among them: EXISTS counts every key
        // it was given (all set by the 20 pairs above).
        for n in 9..=13 {
            let mut args: Vec<Vec<u8>> = ["HBLOCK.FENCED", "lock", "o", &token, "EXISTS"]
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect();
            args.extend((0..n).map(|i| format!("k{i}\0\u{ff}").into_bytes()));
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let found: i64 = call(c, &refs).unwrap_or_else(|e| panic!("{} args: {e}", refs.len()));
            assert_eq!(found, n as i64, "{} arguments", refs.len());
        }
    };
    round(&mut c, 0);
    let before = used_memory(&mut c);
    for r in 1..=20 {
        round(&mut c, r);
    }
    // Same client, same keys and value sizes: a retained argument per call
    // beyond 16 would show as ~50 bytes x 25 arguments x 400 calls.
    let grown = used_memory(&mut c) - before;
    assert!(grown < 64 * 1024, "used_memory grew by {grown} bytes");
    // The lock itself is untouched by all of it.
    assert_eq!(info_bytes(&mut c, "lock", "owner"), Some(b"o".to_vec()));
}

#[test]
fn acl_key_patterns_see_keys_beyond_sixteen_arguments() {
    let server = Server::start();
    let mut c = server.conn();
    let token = acquire(&mut c, "a:lock", "o", &["INTERVAL", "600000"])
        .expect("granted")
        .to_string();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">pw")
        .arg("~a:*")
        .arg("+@all")
        .query(&mut c)
        .expect("ACL SETUSER");
    let mut app = server.conn_as("app", "pw");
    // 9 allowed pairs, then one forbidden key as argument 24.
    let mut args: Vec<String> = ["HBLOCK.FENCED", "a:lock", "o", &token, "MSET"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    for i in 0..9 {
        args.extend([format!("a:{i}"), "v".into()]);
    }
    args.extend(["b:secret".into(), "v".into()]);
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let err = error_of(&mut app, &refs);
    assert!(err.starts_with("NOPERM"), "{err}");
    let exists: i64 = call(&mut c, &[b"EXISTS", b"a:0", b"b:secret"]).expect("EXISTS");
    assert_eq!(exists, 0, "a refused call wrote something");
    // Without the forbidden key the same long call runs.
    let ok: String = call(&mut app, &refs[..refs.len() - 2]).expect("allowed keys");
    assert_eq!(ok, "OK");
}

/// Waits until `conn` reports `role` (INFO replication).
fn wait_role(conn: &mut redis::Connection, role: &str) {
    let seen = eventually(Duration::from_secs(10), || {
        (info_field(conn, "replication", "role")? == role).then_some(())
    });
    assert!(seen.is_some(), "role never became {role}");
}

#[test]
fn a_module_loaded_into_a_running_replica_refuses_lock_writes() {
    // The role is read once at load; a replica gets no role-change event
    // before its first command.
    let master = Server::start();
    let replica = Server::with(
        Options::default()
            .without_module()
            .config("enable-module-command", "yes")
            .config("replica-read-only", "no")
            .config("replicaof", &format!("127.0.0.1 {}", master.port)),
    );
    let (mut m, mut r) = (master.conn(), replica.conn());
    let token = acquire(&mut m, "held", "o", &["INTERVAL", "600000"])
        .expect("granted")
        .to_string();
    let module = crate::support::module_path();
    let _: () = redis::cmd("MODULE")
        .arg("LOAD")
        .arg(module.to_str().expect("path"))
        .query(&mut r)
        .expect("MODULE LOAD");
    wait_in_sync(&mut m, &mut r);
    lock_writes_refused(&mut r, &token);
    // What the master link applies still lands.
    let token2 = acquire(&mut m, "second", "o", &["INTERVAL", "600000"]).expect("granted");
    assert!(token2 >= 1);
    wait_in_sync(&mut m, &mut r);
    assert_eq!(info_bytes(&mut r, "second", "owner"), Some(b"o".to_vec()));
}

#[test]
fn failover_moves_the_cached_role_both_ways() {
    // FAILOVER (7.0's command) demotes the master and promotes the replica
    // while clients are paused; both servers are writable replicas when
    // replicas, so only the module can refuse.
    let writable = || Options::default().config("replica-read-only", "no");
    let a = Server::with(writable());
    let b = Server::with(writable().config("replicaof", &format!("127.0.0.1 {}", a.port)));
    let (mut ca, mut cb) = (a.conn(), b.conn());
    let token = acquire(&mut ca, "held", "o", &["INTERVAL", "600000"])
        .expect("granted")
        .to_string();
    wait_in_sync(&mut ca, &mut cb);
    lock_writes_refused(&mut cb, &token);

    let _: () = redis::cmd("FAILOVER").query(&mut ca).expect("FAILOVER");
    wait_role(&mut ca, "slave");
    wait_role(&mut cb, "master");
    lock_writes_refused(&mut ca, &token);
    let beats: i64 = call(&mut cb, &[b"HBLOCK.BEAT", b"held", b"o", token.as_bytes()])
        .expect("BEAT on the promoted server");
    assert!(beats >= 1);
    // The demoted server follows the new master's writes.
    wait_in_sync(&mut cb, &mut ca);
    let fenced: Value = call(
        &mut cb,
        &[
            b"HBLOCK.FENCED",
            b"held",
            b"o",
            token.as_bytes(),
            b"SET",
            b"x",
            b"1",
        ],
    )
    .expect("FENCED on the promoted server");
    assert_eq!(fenced, Value::Okay);
    wait_in_sync(&mut cb, &mut ca);
    let x: Option<String> = call(&mut ca, &[b"GET", b"x"]).expect("GET");
    assert_eq!(x.as_deref(), Some("1"));

    // And back: B demoted, A promoted.
    let _: () = redis::cmd("FAILOVER")
        .query(&mut cb)
        .expect("FAILOVER back");
    wait_role(&mut cb, "slave");
    wait_role(&mut ca, "master");
    lock_writes_refused(&mut cb, &token);
    let released: i64 = call(
        &mut ca,
        &[b"HBLOCK.RELEASE", b"held", b"o", token.as_bytes()],
    )
    .expect("RELEASE on the server promoted again");
    assert_eq!(released, 1);
}
