//! Locks with permits (`ACQUIRE ... LIMIT n`): N holders, each with its own
//! lease and token; the next waits and is granted, FIFO, when a permit
//! frees (release, expiry, connection close, a raised limit); LIMIT
//! mismatches; HBLOCK.LIMIT; INFO's `limit holders`; HBLOCK.HOLDERS in RESP2
//! and RESP3; WATCH; persistence, AOF, replication, promotion, COPY/RESTORE
//! and a cluster.

use crate::support::cluster::Cluster;
use crate::support::waiting::{joined, release, spawn_acquire, wait_for_key_waiters};
use crate::support::{
    acquire, call, digest, digest_value, error_of, eventually, info, info_bytes, info_int,
    wait_in_sync, Options, Server,
};
use redis::{ConnectionLike, Value};
use std::time::Duration;

const LONG: &[&str] = &["INTERVAL", "60000"];

fn take(c: &mut impl ConnectionLike, key: &str, owner: &str, limit: u16) -> Option<i64> {
    let limit = limit.to_string();
    acquire(c, key, owner, &["INTERVAL", "60000", "LIMIT", &limit])
}

/// HBLOCK.HOLDERS as (owner, token) pairs, in reply order.
fn holders(c: &mut impl ConnectionLike, key: &str) -> Vec<(String, i64)> {
    holder_maps(c, key)
        .into_iter()
        .map(|fields| {
            let owner = match &fields[0].1 {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("owner {other:?}"),
            };
            let token = match fields[1].1 {
                Value::Int(t) => t,
                ref other => panic!("token {other:?}"),
            };
            (owner, token)
        })
        .collect()
}

/// HBLOCK.HOLDERS, each holder as its (name, value) pairs (RESP2 flat
/// arrays and RESP3 maps alike).
fn holder_maps(c: &mut impl ConnectionLike, key: &str) -> Vec<Vec<(String, Value)>> {
    let reply: Value = redis::cmd("HBLOCK.HOLDERS").arg(key).query(c).unwrap();
    let Value::Array(items) = reply else {
        panic!("HOLDERS {key}: {reply:?}");
    };
    items
        .into_iter()
        .map(|item| {
            let pairs: Vec<(Value, Value)> = match item {
                Value::Map(pairs) => pairs,
                Value::Array(flat) => {
                    let mut it = flat.into_iter();
                    std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
                }
                other => panic!("holder {other:?}"),
            };
            pairs
                .into_iter()
                .map(|(name, value)| match name {
                    Value::BulkString(b) => (String::from_utf8_lossy(&b).into_owned(), value),
                    other => panic!("field name {other:?}"),
                })
                .collect()
        })
        .collect()
}

fn beat(c: &mut impl ConnectionLike, key: &str, owner: &str, token: i64) -> Result<i64, String> {
    let t = token.to_string();
    call::<i64>(
        c,
        &[
            b"HBLOCK.BEAT",
            key.as_bytes(),
            owner.as_bytes(),
            t.as_bytes(),
        ],
    )
    .map_err(|e| crate::support::error_text(&e))
}

#[test]
fn n_holders_then_the_next_waits_and_waiters_are_granted_in_fifo_order() {
    let server = Server::start();
    let mut c = server.conn();
    let a = take(&mut c, "sem", "a", 3).unwrap();
    let b = take(&mut c, "sem", "b", 3).unwrap();
    let cc = take(&mut c, "sem", "c", 3).unwrap();
    assert!(a < b && b < cc, "tokens grow: {a} {b} {cc}");
    assert_eq!(take(&mut c, "sem", "d", 3), None, "three hold");
    assert_eq!(
        take(&mut c, "sem", "b", 3),
        Some(b),
        "a holder's re-ACQUIRE is a beat"
    );
    assert_eq!(info_int(&mut c, "sem", "holders"), 3);
    assert_eq!(info_int(&mut c, "sem", "limit"), 3);
    let d = spawn_acquire(
        &server,
        "sem",
        "d",
        &["INTERVAL", "60000", "WAIT", "0", "LIMIT", "3"],
    );
    wait_for_key_waiters(&mut c, "sem", 1);
    let e = spawn_acquire(
        &server,
        "sem",
        "e",
        &["INTERVAL", "60000", "WAIT", "0", "LIMIT", "3"],
    );
    wait_for_key_waiters(&mut c, "sem", 2);
    // Released and granted in one step: the next command sees d holding.
    assert_eq!(release(&mut c, "sem", "b", b), 1);
    let now: Vec<String> = holders(&mut c, "sem").into_iter().map(|h| h.0).collect();
    assert_eq!(now, ["a", "c", "d"], "d, the head, got b's permit");
    let d_token = joined(d).0.unwrap();
    assert!(d_token > cc, "a new token: {d_token}");
    assert_eq!(info_int(&mut c, "sem", "waiters"), 1);
    assert_eq!(release(&mut c, "sem", "a", a), 1);
    let e_token = joined(e).0.unwrap();
    assert!(e_token > d_token);
    let all = holders(&mut c, "sem");
    assert_eq!(
        all,
        vec![
            ("c".into(), cc),
            ("d".into(), d_token),
            ("e".into(), e_token)
        ],
        "in token order"
    );
    // Every token distinct, never reused.
    let mut tokens = vec![a, b, cc, d_token, e_token];
    tokens.dedup();
    assert_eq!(tokens.len(), 5);
}

#[test]
fn a_waiter_is_granted_at_a_holders_expiry_and_at_its_connection_close() {
    let server = Server::start();
    let mut c = server.conn();
    // x's lease runs out by itself; y's is bound to a connection we close.
    // x holds long terms until both waiters are queued (on a busy host that
    // can take longer than a short lease), then renews with 300 ms ones.
    let x = acquire(&mut c, "sem", "x", &["INTERVAL", "60000", "LIMIT", "2"]).unwrap();
    let mut bound = server.conn();
    let y = acquire(
        &mut bound,
        "sem",
        "y",
        &["INTERVAL", "60000", "BIND", "0", "LIMIT", "2"],
    )
    .unwrap();
    assert_eq!(
        holder_maps(&mut c, "sem")[1][8],
        ("bound".into(), Value::Int(1))
    );
    let w1 = spawn_acquire(
        &server,
        "sem",
        "w1",
        &["INTERVAL", "60000", "WAIT", "0", "LIMIT", "2"],
    );
    wait_for_key_waiters(&mut c, "sem", 1);
    let w2 = spawn_acquire(
        &server,
        "sem",
        "w2",
        &["INTERVAL", "60000", "WAIT", "0", "LIMIT", "2"],
    );
    wait_for_key_waiters(&mut c, "sem", 2);
    let short = ["INTERVAL", "300", "MISSES", "1", "LIMIT", "2"];
    assert_eq!(acquire(&mut c, "sem", "x", &short), Some(x), "renewed");
    // x expires: w1 (the head) gets its permit at that moment.
    let w1_token = joined(w1).0.unwrap();
    assert!(w1_token > y);
    // Its permit went to w1 at once: NOTHELD ("released" once regranted).
    let lost = beat(&mut c, "sem", "x", x).unwrap_err();
    assert!(lost.starts_with("NOTHELD"), "{lost}");
    assert_eq!(info_int(&mut c, "sem", "takeovers"), 1);
    // y's connection closes: its permit goes to w2.
    drop(bound);
    let w2_token = joined(w2).0.unwrap();
    assert!(w2_token > w1_token);
    let now: Vec<String> = holders(&mut c, "sem").into_iter().map(|h| h.0).collect();
    assert_eq!(now, ["w1", "w2"]);
}

#[test]
fn each_holder_beats_checks_and_writes_fenced_with_its_own_token() {
    let server = Server::start();
    let mut c = server.conn();
    let a = take(&mut c, "sem", "a", 2).unwrap();
    let b = take(&mut c, "sem", "b", 2).unwrap();
    assert_eq!(beat(&mut c, "sem", "a", a), Ok(1));
    assert_eq!(beat(&mut c, "sem", "b", b), Ok(1));
    assert_eq!(beat(&mut c, "sem", "b", b), Ok(2));
    assert_eq!(
        beat(&mut c, "sem", "a", b).unwrap_err(),
        "NOTHELD the token does not match the current lease"
    );
    for (owner, token) in [("a", a), ("b", b)] {
        let t = token.to_string();
        let ok: String = call(
            &mut c,
            &[b"HBLOCK.CHECK", b"sem", owner.as_bytes(), t.as_bytes()],
        )
        .unwrap();
        assert_eq!(ok, "OK");
        let value = format!("by {owner}");
        let set: String = call(
            &mut c,
            &[
                b"HBLOCK.FENCED",
                b"sem",
                owner.as_bytes(),
                t.as_bytes(),
                b"SET",
                b"data",
                value.as_bytes(),
            ],
        )
        .unwrap();
        assert_eq!(set, "OK");
        let got: String = call(&mut c, &[b"GET", b"data"]).unwrap();
        assert_eq!(got, value);
    }
    // a loses its lease: its writes are refused, b's still go through.
    assert_eq!(release(&mut c, "sem", "a", a), 1);
    let at = a.to_string();
    let refused = error_of(
        &mut c,
        &[
            b"HBLOCK.FENCED",
            b"sem",
            b"a",
            at.as_bytes(),
            b"SET",
            b"data",
            b"late",
        ],
    );
    assert!(refused.starts_with("NOTHELD"), "{refused}");
    let refused = error_of(&mut c, &[b"HBLOCK.CHECK", b"sem", b"a", at.as_bytes()]);
    assert!(refused.starts_with("NOTHELD"), "{refused}");
    assert_eq!(
        beat(&mut c, "sem", "a", a).unwrap_err(),
        "NOTHELD the lease was released"
    );
    let got: String = call(&mut c, &[b"GET", b"data"]).unwrap();
    assert_eq!(got, "by b");
    assert_eq!(beat(&mut c, "sem", "b", b), Ok(3));
    assert_eq!(release(&mut c, "sem", "a", a), 0, "released once");
}

#[test]
fn a_limit_that_does_not_match_is_refused_and_changes_nothing() {
    let server = Server::start();
    let mut c = server.conn();
    let a = take(&mut c, "sem", "a", 3).unwrap();
    let before = digest(&mut c);
    for (args, text) in [
        (
            &["LIMIT", "2"][..],
            "ERR LIMIT 2 does not match the lock's limit 3",
        ),
        (&[][..], "ERR LIMIT 1 does not match the lock's limit 3"),
        (
            &["LIMIT", "0"][..],
            "ERR LIMIT must be an integer from 1 to 1000",
        ),
        (
            &["LIMIT", "1001"][..],
            "ERR LIMIT must be an integer from 1 to 1000",
        ),
        (
            &["LIMIT", "x"][..],
            "ERR LIMIT must be an integer from 1 to 1000",
        ),
        (&["LIMIT"][..], "ERR syntax error"),
        (&["LIMIT", "3", "LIMIT", "3"][..], "ERR syntax error"),
    ] {
        for owner in ["a", "new"] {
            let mut cmd: Vec<&[u8]> = vec![b"HBLOCK.ACQUIRE", b"sem", owner.as_bytes()];
            cmd.extend(args.iter().map(|s| s.as_bytes()));
            assert_eq!(error_of(&mut c, &cmd), text, "{owner} {args:?}");
        }
    }
    assert_eq!(digest(&mut c), before, "nothing changed");
    // A plain lock: LIMIT 2 refused while held.
    assert_eq!(acquire(&mut c, "plain", "p", LONG), Some(a + 1));
    let refused = error_of(&mut c, &[b"HBLOCK.ACQUIRE", b"plain", b"q", b"LIMIT", b"2"]);
    assert_eq!(refused, "ERR LIMIT 2 does not match the lock's limit 1");
    // Nobody holds or waits: the new LIMIT replaces the old one.
    assert_eq!(release(&mut c, "sem", "a", a), 1);
    let t = acquire(&mut c, "sem", "b", &["LIMIT", "5"]).unwrap();
    assert_eq!(info_int(&mut c, "sem", "limit"), 5);
    assert_eq!(release(&mut c, "sem", "b", t), 1);
    assert!(
        acquire(&mut c, "sem", "c", &[]).is_some(),
        "no LIMIT: LIMIT 1"
    );
    assert_eq!(info_int(&mut c, "sem", "limit"), 1);
}

#[test]
fn hblock_limit_raised_grants_at_once_lowered_only_stops_grants() {
    let server = Server::start();
    let mut c = server.conn();
    let a = acquire(&mut c, "sem", "a", LONG).unwrap();
    // Three waiters on a plain lock (its limit, 1: no LIMIT).
    let w = ["INTERVAL", "60000", "WAIT", "0"];
    let w1 = spawn_acquire(&server, "sem", "w1", &w);
    wait_for_key_waiters(&mut c, "sem", 1);
    let w2 = spawn_acquire(&server, "sem", "w2", &w);
    wait_for_key_waiters(&mut c, "sem", 2);
    let w3 = spawn_acquire(&server, "sem", "w3", &w);
    wait_for_key_waiters(&mut c, "sem", 3);
    let raised: i64 = call(&mut c, &[b"HBLOCK.LIMIT", b"sem", b"3"]).unwrap();
    assert_eq!(raised, 3);
    let now: Vec<String> = holders(&mut c, "sem").into_iter().map(|h| h.0).collect();
    assert_eq!(now, ["a", "w1", "w2"], "two permits freed: the two heads");
    assert!(joined(w1).0.unwrap() > a);
    let t2 = joined(w2).0.unwrap();
    assert_eq!(info_int(&mut c, "sem", "waiters"), 1);
    // Lowered to 1: nobody loses a lease, nobody is granted.
    let lowered: i64 = call(&mut c, &[b"HBLOCK.LIMIT", b"sem", b"1"]).unwrap();
    assert_eq!(lowered, 1);
    assert_eq!(info_int(&mut c, "sem", "holders"), 3);
    assert_eq!(release(&mut c, "sem", "w2", t2), 1);
    assert_eq!(
        info_int(&mut c, "sem", "waiters"),
        1,
        "two still hold: no grant"
    );
    assert_eq!(release(&mut c, "sem", "a", a), 1);
    assert_eq!(
        info_int(&mut c, "sem", "waiters"),
        1,
        "one holds: still none"
    );
    let w1_token = holders(&mut c, "sem")[0].1;
    assert_eq!(release(&mut c, "sem", "w1", w1_token), 1);
    assert!(joined(w3).0.is_some(), "none held: w3 granted");
    assert_eq!(info_int(&mut c, "sem", "holders"), 1);
    // HBLOCK.LIMIT on a missing key: a free lock of that limit, token 0.
    let made: i64 = call(&mut c, &[b"HBLOCK.LIMIT", b"new", b"4"]).unwrap();
    assert_eq!(made, 4);
    assert_eq!(info_int(&mut c, "new", "token"), 0);
    assert_eq!(info_int(&mut c, "new", "limit"), 4);
    assert!(take(&mut c, "new", "x", 4).is_some());
    for bad in [&b"0"[..], b"1001", b"-1", b"two"] {
        let e = error_of(&mut c, &[b"HBLOCK.LIMIT", b"new", bad]);
        assert_eq!(e, "ERR LIMIT must be an integer from 1 to 1000");
    }
    let _: () = call(&mut c, &[b"SET", b"str", b"v"]).unwrap();
    assert!(error_of(&mut c, &[b"HBLOCK.LIMIT", b"str", b"2"]).starts_with("WRONGTYPE"));
}

#[test]
fn info_shows_limit_holders_and_the_lease_that_ends_first() {
    let server = Server::start();
    let mut c = server.conn();
    // A plain lock: limit 1, holders 1 then 0.
    let p = acquire(&mut c, "plain", "p", LONG).unwrap();
    assert_eq!(
        (
            info_int(&mut c, "plain", "limit"),
            info_int(&mut c, "plain", "holders")
        ),
        (1, 1)
    );
    assert_eq!(release(&mut c, "plain", "p", p), 1);
    assert_eq!(
        (
            info_int(&mut c, "plain", "limit"),
            info_int(&mut c, "plain", "holders")
        ),
        (1, 0)
    );
    // Three holders: b's lease (10 s) ends first.
    acquire(&mut c, "sem", "a", &["INTERVAL", "60000", "LIMIT", "3"]).unwrap();
    acquire(&mut c, "sem", "b", &["INTERVAL", "10000", "LIMIT", "3"]).unwrap();
    let cc = acquire(&mut c, "sem", "c", &["INTERVAL", "30000", "LIMIT", "3"]).unwrap();
    assert_eq!(
        info_bytes(&mut c, "sem", "owner").as_deref(),
        Some(&b"b"[..])
    );
    assert_eq!(info_int(&mut c, "sem", "interval"), 10000);
    assert_eq!(
        info_int(&mut c, "sem", "token"),
        cc,
        "the last token issued"
    );
    assert_eq!(info_int(&mut c, "sem", "holders"), 3);
    let fields: Vec<String> = info(&mut c, "sem")
        .unwrap()
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(&fields[fields.len() - 2..], ["limit", "holders"]);
}

#[test]
fn holders_reply_in_resp2_and_resp3() {
    let server = Server::start();
    let mut c = server.conn();
    let a = take(&mut c, "sem", "a", 2).unwrap();
    let b = take(&mut c, "sem", "b", 2).unwrap();
    let names = [
        "owner", "token", "interval", "misses", "missed", "ttl", "beats", "age", "bound",
    ];
    for mut conn in [server.conn(), server.conn_resp3()] {
        let maps = holder_maps(&mut conn, "sem");
        assert_eq!(maps.len(), 2);
        for (map, (owner, token)) in maps.iter().zip([("a", a), ("b", b)]) {
            let got: Vec<&str> = map.iter().map(|f| f.0.as_str()).collect();
            assert_eq!(got, names);
            assert_eq!(map[0].1, Value::BulkString(owner.into()));
            assert_eq!(map[1].1, Value::Int(token));
            assert_eq!(map[2].1, Value::Int(60000));
        }
        assert!(holder_maps(&mut conn, "missing").is_empty());
    }
    // A plain lock: its one holder; a free one: none.
    let p = acquire(&mut c, "plain", "p", LONG).unwrap();
    assert_eq!(holders(&mut c, "plain"), vec![("p".into(), p)]);
    release(&mut c, "plain", "p", p);
    assert!(holders(&mut c, "plain").is_empty());
    let _: () = call(&mut c, &[b"SET", b"str", b"v"]).unwrap();
    assert!(error_of(&mut c, &[b"HBLOCK.HOLDERS", b"str"]).starts_with("WRONGTYPE"));
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.HOLDERS"]),
        "ERR wrong number of arguments for 'hblock.holders' command"
    );
}

fn watch(server: &Server, key: &str, seen: i64) -> std::thread::JoinHandle<Vec<(String, Value)>> {
    let mut conn = server.conn();
    let (key, seen) = (key.to_string(), seen.to_string());
    std::thread::spawn(move || {
        let reply: Value = redis::cmd("HBLOCK.WATCH")
            .arg(&key)
            .arg("SEEN")
            .arg(&seen)
            .arg("TIMEOUT")
            .arg(20000)
            .query(&mut conn)
            .unwrap();
        let Value::Array(flat) = reply else {
            panic!("WATCH {reply:?}");
        };
        let mut it = flat.into_iter();
        std::iter::from_fn(|| {
            let name = match it.next()? {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("{other:?}"),
            };
            Some((name, it.next()?))
        })
        .collect()
    })
}

fn field(fields: &[(String, Value)], name: &str) -> Value {
    fields
        .iter()
        .find(|f| f.0 == name)
        .map(|f| f.1.clone())
        .unwrap_or(Value::Nil)
}

#[test]
fn watch_on_a_lock_with_permits_misses_no_change_of_its_holders() {
    let server = Server::start();
    let mut c = server.conn();
    let a = take(&mut c, "sem", "a", 3).unwrap();
    let seen = info_int(&mut c, "sem", "token");
    assert_eq!(seen, a);
    // A change between INFO and WATCH: WATCH SEEN <old token> returns at once.
    let b = take(&mut c, "sem", "b", 3).unwrap();
    let got = watch(&server, "sem", seen).join().unwrap();
    assert_eq!(field(&got, "token"), Value::Int(b));
    assert_eq!(field(&got, "holders"), Value::Int(2));
    // Up to date: WATCH blocks until the next change, a release this time.
    let w = watch(&server, "sem", b);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!w.is_finished(), "nothing changed yet");
    assert_eq!(release(&mut c, "sem", "a", a), 1);
    let got = w.join().unwrap();
    assert_eq!(field(&got, "holders"), Value::Int(1));
    let after = info_int(&mut c, "sem", "token");
    assert!(after > b, "an end advances the token: {after}");
    assert_eq!(field(&got, "token"), Value::Int(after));
    // And a grant after that is seen too.
    let w = watch(&server, "sem", after);
    let d = take(&mut c, "sem", "d", 3).unwrap();
    assert_eq!(field(&w.join().unwrap(), "token"), Value::Int(d));
}

/// Holders and limit as (limit, [(owner, token)]) for comparisons.
fn shape(c: &mut impl ConnectionLike, key: &str) -> (i64, Vec<(String, i64)>) {
    (info_int(c, key, "limit"), holders(c, key))
}

fn three_holders(c: &mut impl ConnectionLike) {
    for owner in ["a", "b", "c"] {
        take(c, "sem", owner, 4).unwrap();
    }
    let t = holders(c, "sem")[1].1;
    assert_eq!(release(c, "sem", "b", t), 1);
    take(c, "sem", "d", 4).unwrap();
}

#[test]
fn holders_survive_save_and_restart_debug_reload_and_an_aof_rewrite() {
    let options = Options::default()
        .config("appendonly", "yes")
        .module_arg("history", "5");
    let mut server = Server::with(options);
    let mut c = server.conn();
    three_holders(&mut c);
    let want = shape(&mut c, "sem");
    let want_digest = digest(&mut c);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(shape(&mut c, "sem"), want, "DEBUG RELOAD");
    assert_eq!(digest(&mut c), want_digest);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    let done = eventually(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
        info.contains("aof_rewrite_in_progress:0").then_some(())
    });
    assert!(done.is_some(), "rewrite never finished");
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(shape(&mut c, "sem"), want, "AOF rewrite + restart");
    assert_eq!(digest(&mut c), want_digest);
    let ended: Value = redis::cmd("HBLOCK.HISTORY")
        .arg("sem")
        .query(&mut c)
        .unwrap();
    assert!(
        matches!(ended, Value::Array(ref v) if v.len() == 1),
        "{ended:?}"
    );
}

#[test]
fn holders_survive_an_rdb_save_and_restart() {
    let mut server = Server::start();
    let mut c = server.conn();
    three_holders(&mut c);
    let want = shape(&mut c, "sem");
    let _: String = redis::cmd("SAVE").query(&mut c).unwrap();
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(shape(&mut c, "sem"), want);
    // The loaded holders beat and release as before.
    let (owner, token) = want.1[0].clone();
    assert_eq!(beat(&mut c, "sem", &owner, token), Ok(1));
    assert_eq!(release(&mut c, "sem", &owner, token), 1);
}

#[test]
fn a_replica_holds_the_same_holders_and_keeps_them_when_promoted() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    three_holders(&mut m);
    let t = take(&mut m, "other", "x", 2).unwrap();
    assert_eq!(beat(&mut m, "other", "x", t), Ok(1));
    let _: i64 = call(&mut m, &[b"HBLOCK.LIMIT", b"other", b"7"]).unwrap();
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r), "DEBUG DIGEST differs");
    assert_eq!(digest_value(&mut m, "sem"), digest_value(&mut r, "sem"));
    let want = shape(&mut m, "sem");
    assert_eq!(shape(&mut r, "sem"), want);
    assert_eq!(shape(&mut r, "other").0, 7);
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    assert_eq!(shape(&mut r, "sem"), want, "promoted: the same holders");
    let (owner, token) = want.1[0].clone();
    assert_eq!(
        beat(&mut r, "sem", &owner, token),
        Ok(1),
        "and they beat there"
    );
}

#[test]
fn copy_and_restore_of_a_lock_with_permits() {
    let server = Server::start();
    let mut c = server.conn();
    three_holders(&mut c);
    let want = shape(&mut c, "sem");
    let copied: i64 = call(&mut c, &[b"COPY", b"sem", b"copy"]).unwrap();
    assert_eq!(copied, 1);
    assert_eq!(shape(&mut c, "sem"), want, "the original keeps its holders");
    // The copy keeps the limit; its leases are ended (docs/guarantees.md).
    assert_eq!(shape(&mut c, "copy"), (4, vec![]));
    let dump: Vec<u8> = redis::cmd("DUMP").arg("sem").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("restored")
        .arg(0)
        .arg(dump)
        .query(&mut c)
        .unwrap();
    let (limit, restored) = shape(&mut c, "restored");
    assert_eq!(limit, 4);
    assert!(
        restored.is_empty(),
        "a RESTORE of these tokens ends them: {restored:?}"
    );
    for (owner, token) in &want.1 {
        assert!(
            beat(&mut c, "restored", owner, *token).is_err(),
            "{owner} {token}"
        );
    }
}

#[test]
fn a_lock_with_permits_on_a_cluster_node() {
    let cluster = Cluster::start();
    let mut c = cluster.client();
    for owner in ["a", "b"] {
        assert!(take(&mut c, "{jobs}:sem", owner, 2).is_some());
    }
    assert_eq!(take(&mut c, "{jobs}:sem", "c", 2), None);
    assert_eq!(holders(&mut c, "{jobs}:sem").len(), 2);
    let raised: i64 = redis::cmd("HBLOCK.LIMIT")
        .arg("{jobs}:sem")
        .arg(3)
        .query(&mut c)
        .unwrap();
    assert_eq!(raised, 3);
    assert!(take(&mut c, "{jobs}:sem", "c", 3).is_some());
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("HBLOCK.HOLDERS")
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["k"]);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("HBLOCK.LIMIT")
        .arg("k")
        .arg(2)
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["k"]);
}

#[test]
fn waiters_keep_the_limit_and_a_deleted_lock_comes_back_with_the_waiters_limit() {
    let server = Server::start();
    let mut c = server.conn();
    let a = take(&mut c, "sem", "a", 1).unwrap();
    let w = ["INTERVAL", "60000", "WAIT", "0", "LIMIT", "2"];
    // LIMIT 2 on a held LIMIT 1 lock: refused, it does not queue.
    let refused = error_of(
        &mut c,
        &[
            b"HBLOCK.ACQUIRE",
            b"sem",
            b"x",
            b"WAIT",
            b"0",
            b"LIMIT",
            b"2",
        ],
    );
    assert_eq!(refused, "ERR LIMIT 2 does not match the lock's limit 1");
    assert_eq!(release(&mut c, "sem", "a", a), 1);
    let b = take(&mut c, "sem", "b", 2).unwrap();
    let cc = take(&mut c, "sem", "c", 2).unwrap();
    assert!(b < cc);
    let w1 = spawn_acquire(&server, "sem", "w1", &w);
    wait_for_key_waiters(&mut c, "sem", 1);
    let w2 = spawn_acquire(&server, "sem", "w2", &w);
    wait_for_key_waiters(&mut c, "sem", 2);
    let _: i64 = call(&mut c, &[b"DEL", b"sem"]).unwrap();
    // The waiters are granted the lock again (a new key), with their LIMIT 2.
    let t1 = joined(w1).0.unwrap();
    let t2 = joined(w2).0.unwrap();
    assert!(cc < t1 && t1 < t2, "{cc} {t1} {t2}");
    assert_eq!(info_int(&mut c, "sem", "limit"), 2);
    assert_eq!(info_int(&mut c, "sem", "holders"), 2);
}
