//! The holder history (`hblock.history` N) and HBLOCK.HISTORY: which ends
//! are recorded and how, the cap, and the history kept through SAVE,
//! DEBUG RELOAD, the AOF, replication and COPY; N = 0 costs nothing.

use crate::support::{
    acquire, config_set, digest_value, error_of, eventually, wait_in_sync, Options, Server,
};
use redis::{Connection, Value};
use std::time::Duration;

/// One entry: (owner, token, granted, ended, how), after checking the
/// field names and their order (RESP2 flat array).
type Entry = (String, i64, i64, i64, String);

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("a bulk string: {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("an integer: {other:?}"),
    }
}

fn history(c: &mut Connection, key: &str) -> Vec<Entry> {
    let reply: Value = redis::cmd("HBLOCK.HISTORY").arg(key).query(c).unwrap();
    let Value::Array(entries) = reply else {
        panic!("HISTORY {key}: {reply:?}");
    };
    entries
        .iter()
        .map(|e| {
            let Value::Array(f) = e else {
                panic!("an entry is a flat array in RESP2: {e:?}");
            };
            let names: Vec<String> = f.iter().step_by(2).map(text).collect();
            assert_eq!(names, ["owner", "token", "granted", "ended", "how"]);
            (text(&f[1]), int(&f[3]), int(&f[5]), int(&f[7]), text(&f[9]))
        })
        .collect()
}

fn release(c: &mut Connection, key: &str, owner: &str, token: i64) {
    let released: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(key)
        .arg(owner)
        .arg(token)
        .query(c)
        .unwrap();
    assert_eq!(released, 1, "{key} {owner} {token}");
}

/// `n` leases of `key`, each acquired and released by its own owner.
fn churn(c: &mut Connection, key: &str, n: usize) {
    for i in 0..n {
        let owner = format!("owner-{i}");
        let token = acquire(c, key, &owner, &[]).expect("granted");
        release(c, key, &owner, token);
    }
}

fn memory_usage(c: &mut Connection, key: &str) -> i64 {
    redis::cmd("MEMORY").arg("USAGE").arg(key).query(c).unwrap()
}

fn with_history(n: &str) -> Options {
    Options::default().module_arg("history", n)
}

#[test]
fn each_kind_of_end_is_recorded_newest_first() {
    let server = Server::with(with_history("10"));
    let mut c = server.conn();
    // released
    let t1 = acquire(&mut c, "lock", "worker-a", &[]).unwrap();
    release(&mut c, "lock", "worker-a", t1);
    // expired: seen by the timer at the deadline, recorded at the deadline
    let t2 = acquire(
        &mut c,
        "lock",
        "worker-b",
        &["INTERVAL", "50", "MISSES", "1"],
    )
    .unwrap();
    let seen = eventually(Duration::from_secs(5), || {
        (history(&mut c, "lock").len() == 2).then_some(())
    });
    assert!(seen.is_some(), "the expiry was never recorded");
    // unbound: the connection it was bound to closes, the grace passes
    let t3 = {
        let mut bound = server.conn();
        acquire(&mut bound, "lock", "worker-c", &["BIND", "0"]).unwrap()
    };
    let seen = eventually(Duration::from_secs(5), || {
        (history(&mut c, "lock").len() == 3).then_some(())
    });
    assert!(seen.is_some(), "the unbound release was never recorded");

    let h = history(&mut c, "lock");
    let summary: Vec<(&str, i64, &str)> = h
        .iter()
        .map(|(o, t, _, _, how)| (o.as_str(), *t, how.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("worker-c", t3, "unbound"),
            ("worker-b", t2, "expired"),
            ("worker-a", t1, "released"),
        ]
    );
    let (_, _, granted, ended, _) = h[1];
    assert_eq!(ended - granted, 50, "an expiry ends at the deadline");
    for (_, _, granted, ended, _) in &h {
        assert!(granted <= ended && *granted > 1_600_000_000_000, "{h:?}");
    }

    // RESP3: each entry is a map with the same fields.
    let reply: Value = redis::cmd("HBLOCK.HISTORY")
        .arg("lock")
        .query(&mut server.conn_resp3())
        .unwrap();
    let Value::Array(entries) = reply else {
        panic!("{reply:?}");
    };
    let Value::Map(pairs) = &entries[0] else {
        panic!("a map: {:?}", entries[0]);
    };
    let names: Vec<String> = pairs.iter().map(|(k, _)| text(k)).collect();
    assert_eq!(names, ["owner", "token", "granted", "ended", "how"]);
    assert_eq!(text(&pairs[4].1), "unbound");
}

#[test]
fn history_replies_and_errors() {
    let server = Server::start();
    let mut c = server.conn();
    let none: Value = redis::cmd("HBLOCK.HISTORY")
        .arg("missing")
        .query(&mut c)
        .unwrap();
    assert_eq!(none, Value::Nil);
    let _: () = redis::cmd("SET")
        .arg("text")
        .arg("v")
        .query(&mut c)
        .unwrap();
    assert!(error_of(&mut c, &[b"HBLOCK.HISTORY", b"text"]).starts_with("WRONGTYPE"));
    assert!(error_of(&mut c, &[b"HBLOCK.HISTORY"]).contains("wrong number of arguments"));
    assert!(error_of(&mut c, &[b"HBLOCK.HISTORY", b"a", b"b"]).contains("wrong number"));
    // Off by default: a lock keeps none.
    churn(&mut c, "lock", 3);
    assert_eq!(history(&mut c, "lock"), []);
    // The config: 0..100, CONFIG SET and GET.
    let err = redis::cmd("CONFIG")
        .arg(&["SET", "hblock.history", "101"])
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        crate::support::error_text(&err).contains("hblock.history"),
        "{err}"
    );
    config_set(&mut c, "hblock.history", "100");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg(&["GET", "hblock.history"])
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["hblock.history", "100"]);
    // Read-only: a user with only HBLOCK.HISTORY and a read-only pattern.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "viewer", "on", ">pw", "%R~*", "+hblock.history"])
        .query(&mut c)
        .unwrap();
    let mut viewer = server.conn_as("viewer", "pw");
    assert_eq!(history(&mut viewer, "lock"), []);
    assert!(error_of(&mut viewer, &[b"HBLOCK.ACQUIRE", b"x", b"o"]).starts_with("NOPERM"));
}

#[test]
fn the_cap_keeps_the_newest_and_a_lower_one_trims_at_the_next_end() {
    let server = Server::with(with_history("3"));
    let mut c = server.conn();
    churn(&mut c, "lock", 5);
    let owners: Vec<String> = history(&mut c, "lock").into_iter().map(|e| e.0).collect();
    assert_eq!(owners, ["owner-4", "owner-3", "owner-2"]);
    config_set(&mut c, "hblock.history", "1");
    assert_eq!(history(&mut c, "lock").len(), 3, "trimmed at the next end");
    churn(&mut c, "lock", 1);
    let h = history(&mut c, "lock");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].0, "owner-0");
    config_set(&mut c, "hblock.history", "0");
    churn(&mut c, "lock", 1);
    assert_eq!(history(&mut c, "lock"), []);
}

#[test]
fn the_history_survives_reload_restart_aof_and_copy() {
    let options = with_history("5")
        .config("appendonly", "yes")
        .config("aof-use-rdb-preamble", "no");
    let mut server = Server::with(options);
    let mut c = server.conn();
    churn(&mut c, "lock", 7);
    let token = acquire(&mut c, "lock", "holder", &["INTERVAL", "600000"]).unwrap();
    let before = history(&mut c, "lock");
    assert_eq!(before.len(), 5);
    let digest = digest_value(&mut c, "lock");

    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(history(&mut c, "lock"), before, "DEBUG RELOAD");
    assert_eq!(digest_value(&mut c, "lock"), digest);

    // The AOF rewrite (without an RDB preamble: HBLOCK.APPLY with the history).
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    let done = eventually(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).ok()?;
        let busy =
            info.contains("aof_rewrite_in_progress:1") || info.contains("aof_rewrite_scheduled:1");
        (!busy).then_some(())
    });
    assert!(done.is_some(), "AOF rewrite did not finish");
    server.crash_and_restart();
    let mut c = server.conn();
    assert_eq!(history(&mut c, "lock"), before, "AOF rewrite and replay");
    assert_eq!(digest_value(&mut c, "lock"), digest);

    // SAVE and a restart from the RDB file alone.
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    server.crash_and_restart_with(with_history("5"));
    let mut c = server.conn();
    assert_eq!(history(&mut c, "lock"), before, "RDB");

    // COPY carries it; the copy's lease is ended, not recorded.
    let copied: i64 = redis::cmd("COPY")
        .arg("lock")
        .arg("copy")
        .query(&mut c)
        .unwrap();
    assert_eq!(copied, 1);
    assert_eq!(history(&mut c, "copy"), before, "COPY");
    // The holder's own end goes in front.
    release(&mut c, "lock", "holder", token);
    let after = history(&mut c, "lock");
    assert_eq!(after[0].0, "holder");
    assert_eq!(after[1..], before[..4]);
}

#[test]
fn a_replica_keeps_the_same_history() {
    let master = Server::with(with_history("4"));
    let replica = Server::replica_of(&master);
    let mut m = master.conn();
    let mut r = replica.conn();
    churn(&mut m, "lock", 3);
    let t = acquire(&mut m, "lock", "short", &["INTERVAL", "30", "MISSES", "1"]).unwrap();
    let expired = eventually(Duration::from_secs(5), || {
        (history(&mut m, "lock").first().map(|e| e.1) == Some(t)).then_some(())
    });
    assert!(expired.is_some());
    // Beats after an end do not resend the history; the replica keeps it.
    let t = acquire(&mut m, "lock", "beater", &[]).unwrap();
    for _ in 0..3 {
        let _: i64 = redis::cmd("HBLOCK.BEAT")
            .arg(&["lock", "beater"])
            .arg(t)
            .query(&mut m)
            .unwrap();
    }
    wait_in_sync(&mut m, &mut r);
    let on_master = history(&mut m, "lock");
    assert_eq!(on_master.len(), 4);
    assert_eq!(history(&mut r, "lock"), on_master);
    assert_eq!(digest_value(&mut m, "lock"), digest_value(&mut r, "lock"));
    // A replica started later gets it by full sync (RDB).
    let late = Server::replica_of(&master);
    let mut l = late.conn();
    wait_in_sync(&mut m, &mut l);
    assert_eq!(history(&mut l, "lock"), on_master);
    assert_eq!(digest_value(&mut l, "lock"), digest_value(&mut m, "lock"));
}

/// With `hblock.history 0` (the default) a lock costs what it did before the
/// history existed; with N = 10 each entry costs what is measured here.
#[test]
fn history_off_adds_nothing_and_each_entry_costs_little() {
    let server = Server::start();
    let mut c = server.conn();
    // Key names of one length: Valkey counts the name in MEMORY USAGE.
    let owner = "worker-1.host-abc"; // 17 bytes
    let plain = |c: &mut Connection, key: &str| {
        let token = acquire(c, key, owner, &[]).unwrap();
        release(c, key, owner, token);
    };
    plain(&mut c, "lock:b");
    for _ in 0..10 {
        plain(&mut c, "lock:f");
    }
    let base = memory_usage(&mut c, "lock:b");
    assert_eq!(memory_usage(&mut c, "lock:f"), base, "N = 0 adds nothing");

    config_set(&mut c, "hblock.history", "10");
    for _ in 0..10 {
        plain(&mut c, "lock:n");
    }
    assert_eq!(history(&mut c, "lock:n").len(), 10);
    let with = memory_usage(&mut c, "lock:n");
    let per_entry = (with - base) as f64 / 10.0;
    eprintln!("MEMORY USAGE: {base} bytes without history, {with} with 10 entries: {per_entry:.1} bytes per entry");
    assert!(with > base, "the entries are counted");
    assert!(per_entry < 64.0, "{per_entry} bytes per entry");

    // Back to 0: the next end drops the history and the record is as before.
    config_set(&mut c, "hblock.history", "0");
    plain(&mut c, "lock:n");
    assert_eq!(history(&mut c, "lock:n"), []);
    assert_eq!(memory_usage(&mut c, "lock:n"), base);
}

/// A grant whose waiter was killed before it read its token is taken back:
/// recorded as `undone`, after the release that handed the lock on.
#[test]
fn an_undone_grant_is_recorded_as_such() {
    use crate::support::waiting::{blocked_waiter, wait_for_waiters};
    let server = Server::with(with_history("10"));
    let mut m = server.conn();
    let token = acquire(&mut m, "k", "A", &["INTERVAL", "60000"]).unwrap();
    let (first, _gone) = blocked_waiter(&server, "k", "W1");
    wait_for_waiters(&mut m, 1);
    let (_, second) = blocked_waiter(&server, "k", "W2");
    wait_for_waiters(&mut m, 2);
    // RELEASE grants W1; CLIENT KILL in the same pass: W1 never reads it.
    let replies: Vec<Value> = redis::pipe()
        .cmd("HBLOCK.RELEASE")
        .arg(&["k", "A"])
        .arg(token)
        .cmd("CLIENT")
        .arg(&["KILL", "ID"])
        .arg(first)
        .query(&mut m)
        .unwrap();
    assert_eq!(replies, [Value::Int(1), Value::Int(1)]);
    let (reply, _) = second.join().unwrap();
    assert_eq!(reply.unwrap(), Value::Int(token + 2));
    let summary: Vec<(String, i64, String)> = history(&mut m, "k")
        .into_iter()
        .map(|(o, t, _, _, how)| (o, t, how))
        .collect();
    assert_eq!(
        summary,
        [
            ("W1".to_string(), token + 1, "undone".to_string()),
            ("A".to_string(), token, "released".to_string()),
        ]
    );
}

/// RESTORE (a DUMP payload anyone with `+restore` may forge) brings a
/// history checked for its range too, not only its format: an entry whose
/// token is above the record's own, or whose time is before 1970 or past
/// year 9999, is refused as a bad payload, nothing changes and the server
/// stays up; a forged history that could be real loads as written.
#[test]
fn a_forged_history_out_of_range_is_refused() {
    use crate::support::dump::{forge_with_history, Record};
    use hblock_core::history::{pushed, Entry as End, How, TIME_MAX_MS};
    let server = Server::with(with_history("5"));
    let mut c = server.conn();
    acquire(&mut c, "template", "alice", &["INTERVAL", "600000"]).unwrap();
    let template: Vec<u8> = redis::cmd("DUMP").arg("template").query(&mut c).unwrap();
    churn(&mut c, "victim", 2);
    let before = history(&mut c, "victim");
    assert_eq!(before.len(), 2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record = Record::held(b"mallory", 1000, now);
    let fine = End {
        owner: b"earlier",
        token: 999,
        granted_ms: now - 5000,
        ended_ms: now - 4000,
        how: How::Released,
    };
    let restore = |c: &mut Connection, key: &str, history: &[u8]| -> redis::RedisResult<()> {
        redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(forge_with_history(&template, &record, history))
            .arg("REPLACE")
            .query(c)
    };
    let forged = [
        End {
            token: (1 << 63) - 1,
            granted_ms: i64::MIN,
            ended_ms: i64::MAX,
            ..fine
        },
        End {
            token: 1001,
            ..fine
        },
        End {
            token: 1 << 53,
            ..fine
        },
        End {
            granted_ms: -1,
            ..fine
        },
        End {
            ended_ms: -1,
            ..fine
        },
        End {
            ended_ms: TIME_MAX_MS + 1,
            ..fine
        },
        End {
            granted_ms: TIME_MAX_MS + 1,
            ..fine
        },
    ];
    for (i, entry) in forged.iter().enumerate() {
        // Behind a good entry too: every entry is checked.
        for bytes in [
            pushed(&[], entry, 5),
            pushed(&pushed(&[], entry, 5), &fine, 5),
        ] {
            let err = restore(&mut c, "victim", &bytes).unwrap_err();
            assert!(
                format!("{err:?}").contains("Bad data format"),
                "{i} {entry:?}: {err:?}"
            );
        }
        let err = restore(&mut c, "new", &pushed(&[], entry, 5)).unwrap_err();
        assert!(
            format!("{err:?}").contains("Bad data format"),
            "{i}: {err:?}"
        );
    }
    assert_eq!(history(&mut c, "victim"), before, "nothing changed");
    let exists: i64 = redis::cmd("EXISTS").arg("new").query(&mut c).unwrap();
    assert_eq!(exists, 0);
    // The same record with an entry that could be real loads as written
    // (a clock that stepped back may end an entry before its grant).
    let back = End {
        granted_ms: now - 4000,
        ended_ms: now - 5000,
        ..fine
    };
    let bytes = pushed(&pushed(&[], &fine, 5), &back, 5);
    restore(&mut c, "victim", &bytes).unwrap();
    let got = history(&mut c, "victim");
    assert_eq!(
        got,
        [
            (
                "earlier".into(),
                999,
                now - 4000,
                now - 5000,
                "released".into()
            ),
            (
                "earlier".into(),
                999,
                now - 5000,
                now - 4000,
                "released".into()
            ),
        ]
    );
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}
