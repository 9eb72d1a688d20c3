//! HBLOCK.FENCED and HBLOCK.CHECK: writes that happen only while the caller
//! holds the live lease, checked inside Redis.

use crate::support::{
    acquire, call, digest, error_of, error_text, wait_for_state, wait_in_sync, Options, Server,
};
use redis::Value;
use std::time::Duration;

fn fenced(c: &mut redis::Connection, token: &str, cmd: &[&str]) -> redis::RedisResult<Value> {
    redis::cmd("HBLOCK.FENCED")
        .arg("{app}:lock")
        .arg("o")
        .arg(token)
        .arg(cmd)
        .query(c)
}

fn data(c: &mut redis::Connection) -> String {
    let dump: Vec<Option<Vec<u8>>> = ["{app}:s", "{app}:n", "{app}:h"]
        .iter()
        .map(|k| redis::cmd("DUMP").arg(*k).query(c).expect("DUMP"))
        .collect();
    format!("{dump:?}")
}

#[test]
fn writes_apply_only_for_the_live_holder_and_replies_pass_through() {
    let server = Server::start();
    let mut c = server.conn();
    // A lease that cannot lapse between these calls however slowly this
    // client runs; refusals_write_nothing lets it expire on purpose.
    assert_eq!(
        acquire(&mut c, "{app}:lock", "o", &["INTERVAL", "60000"]),
        Some(1)
    );
    assert_eq!(
        fenced(&mut c, "1", &["SET", "{app}:s", "v"]).unwrap(),
        Value::Okay
    );
    assert_eq!(
        fenced(&mut c, "1", &["INCR", "{app}:n"]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        fenced(&mut c, "1", &["HSET", "{app}:h", "f", "x"]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        fenced(&mut c, "1", &["DEL", "{app}:gone"]).unwrap(),
        Value::Int(0)
    );
    // Errors of the wrapped command are its own.
    let wrongtype = fenced(&mut c, "1", &["INCR", "{app}:h"]).unwrap_err();
    assert_eq!(wrongtype.code(), Some("WRONGTYPE"));
    refusals_write_nothing(&mut c);
    // RESP3: a map through FENCED is still a map.
    assert_eq!(
        acquire(&mut c, "{app}:lock", "o", &["INTERVAL", "60000"]),
        Some(3)
    );
    let mut c3 = server.conn_resp3();
    let map: Value = fenced(&mut c3, "3", &["HGETALL", "{app}:h"]).unwrap();
    assert!(matches!(map, Value::Map(_)), "{map:?}");
    let flat: Value = fenced(&mut c, "3", &["HGETALL", "{app}:h"]).unwrap();
    assert!(matches!(flat, Value::Array(_)), "{flat:?}");
}

/// With `{app}:lock` held by "o" under token 1: a stale token, another
/// owner, the lease expired (renewed with 200 ms terms, left to lapse),
/// released, a missing lock, bad syntax; all refused, none writes.
fn refusals_write_nothing(c: &mut redis::Connection) {
    let before = data(c);
    // A stale token, another owner: NOTHELD, nothing written.
    let stale = fenced(c, "2", &["SET", "{app}:s", "stale"]).unwrap_err();
    assert_eq!(stale.code(), Some("NOTHELD"));
    let other = error_of(
        c,
        &[
            b"HBLOCK.FENCED",
            b"{app}:lock",
            b"x",
            b"1",
            b"SET",
            b"{app}:s",
            b"y",
        ],
    );
    assert!(
        other.starts_with("NOTHELD the lock is held by another owner"),
        "{other}"
    );
    // Expired (no beat for 200 ms), released, missing.
    let renewed = acquire(c, "{app}:lock", "o", &["INTERVAL", "100", "MISSES", "2"]);
    assert_eq!(renewed, Some(1));
    wait_for_state(c, "{app}:lock", "expired");
    let expired = fenced(c, "1", &["INCR", "{app}:n"]).unwrap_err();
    assert_eq!(expired.detail(), Some("the lease expired"));
    assert_eq!(acquire(c, "{app}:lock", "o", &[]), Some(2));
    let _: i64 = call(c, &[b"HBLOCK.RELEASE", b"{app}:lock", b"o", b"2"]).unwrap();
    let released = fenced(c, "2", &["INCR", "{app}:n"]).unwrap_err();
    assert_eq!(released.detail(), Some("the lease was released"));
    let missing = error_of(
        c,
        &[
            b"HBLOCK.FENCED",
            b"{app}:nolock",
            b"o",
            b"1",
            b"SET",
            b"{app}:s",
            b"y",
        ],
    );
    assert!(missing.starts_with("NOTHELD no such lock"), "{missing}");
    assert_eq!(data(c), before, "refused writes changed data");
    // Syntax: ERR, as for BEAT.
    for bad in [&b"0"[..], b"x", b"-1"] {
        let err = error_of(
            c,
            &[
                b"HBLOCK.FENCED",
                b"{app}:lock",
                b"o",
                bad,
                b"GET",
                b"{app}:s",
            ],
        );
        assert!(err.starts_with("ERR"), "{err}");
    }
    assert!(
        error_of(c, &[b"HBLOCK.FENCED", b"{app}:lock", b"o", b"1"]).starts_with("ERR wrong number")
    );
}

#[test]
fn blocking_transaction_unknown_and_hblock_commands_are_refused() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "{app}:lock", "o", &["INTERVAL", "60000"]),
        Some(1)
    );
    let before = digest(&mut c);
    let refused: [(&[&str], &str); 12] = [
        (&["BLPOP", "{app}:l", "0"], "blocking"),
        (&["MULTI"], "not allowed in scripts"),
        (&["EXEC"], "not allowed in scripts"),
        (&["WATCH", "{app}:s"], "not allowed in scripts"),
        (&["DISCARD"], "not allowed in scripts"),
        (&["SUBSCRIBE", "ch"], "not allowed in scripts"),
        (
            &["HBLOCK.RELEASE", "{app}:lock", "o", "1"],
            "HBLOCK commands",
        ),
        (&["NOSUCHCOMMAND", "x"], "unknown command"),
        // They would change RM_Call's throwaway client and answer OK.
        (&["SELECT", "1"], "connection's state"),
        (&["select", "0"], "connection's state"),
        (&["ReadWrite"], "connection's state"),
        (&["ASKING"], "connection's state"),
    ];
    for (cmd, why) in refused {
        let err = fenced(&mut c, "1", cmd).unwrap_err();
        let text = error_text(&err);
        assert!(
            text.starts_with("ERR") && text.contains(why),
            "{cmd:?}: {text}"
        );
    }
    assert_eq!(digest(&mut c), before, "nothing ran");
    assert_eq!(crate::support::state(&mut c, "{app}:lock"), "held");
    // The caller's connection still uses database 0: a SET after the
    // refused SELECT lands where the lock is.
    fenced(&mut c, "1", &["SET", "{app}:after", "x"]).unwrap();
    let here: i64 = redis::cmd("EXISTS")
        .arg("{app}:after")
        .query(&mut c)
        .unwrap();
    assert_eq!(here, 1);
}

/// A server started with `renames` (rename-command lines) in an included
/// config file (kept in the returned directory), and `{app}:lock` held by
/// `o` with token 1.
fn renaming(renames: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("rename.conf");
    std::fs::write(&conf, renames).expect("write conf");
    let server = Server::with(Options::default().config("include", &conf.display().to_string()));
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "{app}:lock", "o", &["INTERVAL", "60000"]),
        Some(1)
    );
    (dir, server)
}

#[test]
fn renamed_connection_state_commands_are_refused_too() {
    // An operator's `rename-command SELECT myselect`: the renamed command
    // must not slip past the refusal and answer OK with no effect.
    let (_dir, server) =
        renaming("rename-command SELECT myselect\nrename-command READWRITE myreadwrite\n");
    let mut c = server.conn();
    let before = digest(&mut c);
    for cmd in [&["myselect", "1"][..], &["MySelect", "0"], &["myreadwrite"]] {
        let err = fenced(&mut c, "1", cmd).unwrap_err();
        let text = error_text(&err);
        assert!(
            text.starts_with("ERR") && text.contains("connection's state"),
            "{cmd:?}: {text}"
        );
    }
    assert_eq!(digest(&mut c), before, "nothing ran");
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(info.split(' ').any(|f| f == "db=0"), "{info}");
}

#[test]
fn without_command_info_fenced_says_so() {
    // `rename-command COMMAND ""` (a common hardening): FENCED cannot ask
    // what the wrapped command is, and must say that rather than call
    // every command unknown.
    let (_dir, server) = renaming("rename-command COMMAND \"\"\n");
    let mut c = server.conn();
    let before = digest(&mut c);
    let err = fenced(&mut c, "1", &["SET", "{app}:s", "v"]).unwrap_err();
    let text = err.detail().unwrap_or("");
    assert!(
        err.code() == Some("ERR") && text.contains("COMMAND INFO") && text.contains("failed"),
        "{err}"
    );
    assert_eq!(digest(&mut c), before, "nothing ran");
}

#[test]
fn keys_of_the_wrapped_command_are_keys_for_getkeys_and_acl() {
    let server = Server::start();
    let mut c = server.conn();
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg(&[
            "GETKEYS",
            "HBLOCK.FENCED",
            "{app}:lock",
            "o",
            "1",
            "MSET",
            "{app}:a",
            "1",
            "{app}:b",
            "2",
        ])
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["{app}:lock", "{app}:a", "{app}:b"]);
    assert_eq!(
        acquire(&mut c, "app:lock", "o", &["INTERVAL", "60000"]),
        Some(1)
    );
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "appuser",
            "on",
            "nopass",
            "~app:*",
            "+@all",
            "-flushall",
        ])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "noset", "on", "nopass", "~*", "+@all", "-set"])
        .query(&mut c)
        .unwrap();
    let as_user = |user: &str, args: &[&str]| -> redis::RedisResult<Value> {
        let mut u = server.conn();
        let _: () = redis::cmd("AUTH").arg(user).arg("x").query(&mut u)?;
        redis::cmd("HBLOCK.FENCED").arg(args).query(&mut u)
    };
    assert_eq!(
        as_user("appuser", &["app:lock", "o", "1", "SET", "app:data", "v"]).unwrap(),
        Value::Okay
    );
    let denied = as_user("appuser", &["app:lock", "o", "1", "SET", "other:data", "v"]).unwrap_err();
    assert_eq!(denied.code(), Some("NOPERM"), "{denied}");
    let no_set = as_user("noset", &["app:lock", "o", "1", "SET", "app:data", "w"]).unwrap_err();
    assert!(
        format!("{no_set}").contains("NOPERM") || no_set.code() == Some("NOPERM"),
        "{no_set}"
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg("other:data")
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0);
    let value: String = redis::cmd("GET").arg("app:data").query(&mut c).unwrap();
    assert_eq!(value, "v");
}

const GUARDED: &str = "redis.call('HBLOCK.CHECK', KEYS[1], ARGV[1], ARGV[2]); \
    redis.call('SET', KEYS[2], ARGV[3]); \
    return redis.call('HBLOCK.FENCED', KEYS[1], ARGV[1], ARGV[2], 'INCR', KEYS[3])";

#[test]
fn check_guards_scripts_and_fenced_works_in_multi_lua_and_functions() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "{app}:lock", "o", &["INTERVAL", "60000"]),
        Some(1)
    );
    let run = |c: &mut redis::Connection, token: &str, value: &str| -> redis::RedisResult<i64> {
        redis::cmd("EVAL")
            .arg(GUARDED)
            .arg(3)
            .arg(&["{app}:lock", "{app}:s", "{app}:n", "o", token, value])
            .query(c)
    };
    assert_eq!(run(&mut c, "1", "fresh").unwrap(), 1);
    let before = data(&mut c);
    let stale = run(&mut c, "7", "stale").unwrap_err();
    assert!(format!("{stale}").contains("NOTHELD"), "{stale}");
    assert_eq!(
        data(&mut c),
        before,
        "CHECK stopped the stale script before its writes"
    );
    let (ok, n): (String, i64) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.FENCED")
        .arg(&["{app}:lock", "o", "1", "SET", "{app}:s", "multi"])
        .cmd("HBLOCK.FENCED")
        .arg(&["{app}:lock", "o", "1", "INCR", "{app}:n"])
        .query(&mut c)
        .unwrap();
    assert_eq!((ok.as_str(), n), ("OK", 2));
    let lib = "#!lua name=fencedlib\nredis.register_function('fenced_incr', function(keys, args) return redis.call('HBLOCK.FENCED', keys[1], args[1], args[2], 'INCR', keys[2]) end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    let n: i64 = redis::cmd("FCALL")
        .arg(&["fenced_incr", "2", "{app}:lock", "{app}:n", "o", "1"])
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 3);
    let refused: redis::RedisResult<i64> = redis::cmd("FCALL")
        .arg(&["fenced_incr", "2", "{app}:lock", "{app}:n", "o", "2"])
        .query(&mut c);
    assert!(refused.is_err());
    let check: String = redis::cmd("HBLOCK.CHECK")
        .arg(&["{app}:lock", "o", "1"])
        .query(&mut c)
        .unwrap();
    assert_eq!(check, "OK");
}

#[test]
fn replicas_and_the_aof_get_the_wrapped_effect_once() {
    let master = Server::with(Options::default().config("appendonly", "yes"));
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    let mut accepted = 0;
    for round in 0..20i64 {
        // A long lease while the two FENCED calls are made (a client
        // preempted between them must not see it lapse)...
        let token = acquire(&mut m, "{app}:lock", "o", &["INTERVAL", "60000"]).expect("granted");
        for (t, value) in [(token, "ok"), (token + 100, "stale")] {
            let set = redis::cmd("HBLOCK.FENCED")
                .arg(&[
                    "{app}:lock",
                    "o",
                    &t.to_string(),
                    "SET",
                    &format!("{{app}}:k{round}"),
                    value,
                ])
                .query::<Value>(&mut m);
            accepted += i32::from(set.is_ok());
        }
        if round % 3 == 0 {
            // ... then renewed with 30 ms terms, left to expire.
            let renewed = acquire(
                &mut m,
                "{app}:lock",
                "o",
                &["INTERVAL", "30", "MISSES", "1"],
            );
            assert_eq!(renewed, Some(token));
            wait_for_state(&mut m, "{app}:lock", "expired");
        } else {
            let _: i64 = call(
                &mut m,
                &[
                    b"HBLOCK.RELEASE",
                    b"{app}:lock",
                    b"o",
                    token.to_string().as_bytes(),
                ],
            )
            .unwrap();
        }
    }
    assert_eq!(accepted, 20);
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r));
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut r)
        .unwrap();
    assert!(stats.contains("cmdstat_set:calls=20,"), "{stats}");
    assert!(!stats.contains("cmdstat_hblock.fenced"), "{stats}");
    // The AOF holds the SETs, and no FENCED.
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut m).unwrap();
    let mut m = master.conn();
    let kept: Option<String> = redis::cmd("GET").arg("{app}:k0").query(&mut m).unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("ok"),
        "the AOF replays the fenced SET"
    );
    assert_eq!(digest(&mut m), digest(&mut r), "AOF replay = replica");
}

/// FENCED follows the wrapped command over maxmemory: it is not `denyoom`
/// itself, so a fenced GET or DEL works, and a fenced SET (denyoom) gets OOM.
#[test]
fn over_maxmemory_oom_follows_the_wrapped_command() {
    let server = Server::start();
    let mut c = server.conn();
    let info: Vec<Vec<Value>> = redis::cmd("COMMAND")
        .arg(&["INFO", "HBLOCK.FENCED"])
        .query(&mut c)
        .unwrap();
    let flags = format!("{:?}", info[0][2]);
    assert!(
        flags.contains("write") && !flags.contains("denyoom"),
        "{flags}"
    );
    assert_eq!(
        acquire(&mut c, "{app}:lock", "o", &["INTERVAL", "60000"]),
        Some(1)
    );
    let _: () = redis::cmd("SET")
        .arg(&["{app}:r", "kept"])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&["{app}:d", "gone"])
        .query(&mut c)
        .unwrap();
    crate::support::config_set(&mut c, "maxmemory-policy", "noeviction");
    crate::support::config_set(&mut c, "maxmemory", "1");
    let read = fenced(&mut c, "1", &["GET", "{app}:r"]).unwrap();
    assert_eq!(read, Value::BulkString(b"kept".to_vec()), "a read works");
    let deleted = fenced(&mut c, "1", &["DEL", "{app}:d"]).unwrap();
    assert_eq!(deleted, Value::Int(1), "a delete works (it frees memory)");
    let oom = fenced(&mut c, "1", &["SET", "{app}:s", "v"]).unwrap_err();
    assert!(error_text(&oom).starts_with("OOM"), "{oom}");
    // From Lua too.
    let script = "return redis.call('HBLOCK.FENCED', KEYS[1], 'o', '1', 'GET', KEYS[2])";
    let read: Value = redis::cmd("EVAL")
        .arg(&[script, "2", "{app}:lock", "{app}:r"])
        .query(&mut c)
        .unwrap();
    assert_eq!(
        read,
        Value::BulkString(b"kept".to_vec()),
        "a read from Lua works"
    );
    let check: String = redis::cmd("HBLOCK.CHECK")
        .arg(&["{app}:lock", "o", "1"])
        .query(&mut c)
        .unwrap();
    assert_eq!(check, "OK");
    crate::support::config_set(&mut c, "maxmemory", "0");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&["{app}:s", "{app}:d"])
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0, "the SET wrote nothing, the DEL deleted");
}

/// `HBLOCK.FENCED lock o token` `levels` times (the inner names in mixed
/// case), then `SET data 1`: each level wraps the next.
pub fn nested_fenced(lock: &str, token: &str, levels: usize, data: &str) -> Vec<String> {
    let names = ["HBLOCK.FENCED", "hblock.fenced", "HbLoCk.FeNcEd"];
    let mut args = Vec::with_capacity(levels * 4 + 3);
    for level in 0..levels {
        args.push(names[level % names.len()].to_string());
        args.extend([lock.to_string(), "o".to_string(), token.to_string()]);
    }
    args.extend(["SET".to_string(), data.to_string(), "1".to_string()]);
    args
}

/// Runs `args` (a command with its name), with a read timeout so that a
/// server that dies fails the call instead of hanging it.
pub fn send(c: &mut redis::Connection, args: &[String]) -> redis::RedisResult<Value> {
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut cmd = redis::cmd(&args[0]);
    cmd.arg(&args[1..]);
    cmd.query(c)
}

/// Nested FENCED: Redis asks FENCED for its keys before it runs (COMMAND
/// GETKEYS, ACL key patterns, ACL DRYRUN, EXEC's ACL check); each level used
/// to ask the next through RM_GetCommandKeys until the stack overflowed
/// (SIGSEGV at ~4,000 levels). Now a wrapped HBLOCK.* adds no keys, and the
/// call is refused when it runs.
#[test]
fn nested_fenced_key_lookups_do_not_recurse() {
    let server = Server::start();
    let mut c = server.conn();
    let token = acquire(&mut c, "app:lock", "o", &["INTERVAL", "600000"])
        .unwrap()
        .to_string();
    let nested = nested_fenced("app:lock", &token, 10_000, "app:x");
    let mut getkeys = vec!["COMMAND".to_string(), "GETKEYS".to_string()];
    getkeys.extend(nested.iter().cloned());
    let keys = send(&mut c, &getkeys).expect("COMMAND GETKEYS answers");
    assert_eq!(
        keys,
        Value::Array(vec![Value::BulkString(b"app:lock".to_vec())]),
        "the lock only: the wrapped FENCED adds no keys"
    );
    // A user restricted as docs/guarantees.md recommends: its ACL key check
    // asks FENCED for its keys.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">pw", "~app:*", "+hblock.fenced"])
        .query(&mut c)
        .unwrap();
    let mut app = server.conn();
    let _: () = redis::cmd("AUTH")
        .arg(&["app", "pw"])
        .query(&mut app)
        .unwrap();
    let refused = send(&mut app, &nested).expect_err("refused");
    assert!(
        error_text(&refused).contains("HBLOCK commands cannot be fenced"),
        "{refused}"
    );
    let mut dryrun = vec!["ACL".to_string(), "DRYRUN".to_string(), "app".to_string()];
    dryrun.extend(nested.iter().cloned());
    let _ = send(&mut c, &dryrun).expect("ACL DRYRUN answers");
    // EXEC checks the ACL of every queued command again.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "tx", "on", ">pw", "~app:*", "+@all"])
        .query(&mut c)
        .unwrap();
    let mut tx = server.conn();
    let _: () = redis::cmd("AUTH")
        .arg(&["tx", "pw"])
        .query(&mut tx)
        .unwrap();
    let _: () = redis::cmd("MULTI").query(&mut tx).unwrap();
    let queued = send(&mut tx, &nested).expect("queued");
    assert_eq!(queued, Value::SimpleString("QUEUED".into()));
    let exec = format!("{:?}", send(&mut tx, &["EXEC".to_string()]));
    assert!(exec.contains("HBLOCK commands cannot be fenced"), "{exec}");
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let exists: i64 = redis::cmd("EXISTS").arg("app:x").query(&mut c).unwrap();
    assert_eq!(exists, 0, "nothing ran");
}

/// A wrapped command the user may run but on a channel (or key) it may not
/// use: the NOPERM names the channel (or key), not the command.
#[test]
fn acl_denials_inside_fenced_name_what_was_denied() {
    let server = Server::start();
    let mut c = server.conn();
    let token = acquire(&mut c, "app:lock", "o", &["INTERVAL", "600000"])
        .unwrap()
        .to_string();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "pub",
            "on",
            ">pw",
            "~app:*",
            "resetchannels",
            "&app:*",
            "+hblock.fenced",
            "+publish",
        ])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "nopub",
            "on",
            ">pw",
            "~app:*",
            "&*",
            "+hblock.fenced",
        ])
        .query(&mut c)
        .unwrap();
    let as_user = |user: &str, args: &[&str]| -> redis::RedisResult<Value> {
        let mut u = server.conn();
        let _: () = redis::cmd("AUTH").arg(user).arg("pw").query(&mut u)?;
        redis::cmd("HBLOCK.FENCED").arg(args).query(&mut u)
    };
    let allowed = as_user("pub", &["app:lock", "o", &token, "PUBLISH", "app:ch", "hi"]);
    assert_eq!(
        allowed.unwrap(),
        Value::Int(0),
        "its own channel: published"
    );
    let channel = as_user("pub", &["app:lock", "o", &token, "PUBLISH", "other", "hi"])
        .expect_err("the channel is denied");
    assert_eq!(
        error_text(&channel),
        "NOPERM this user has no permissions to access a channel of the 'publish' command \
         through HBLOCK.FENCED"
    );
    let command = as_user(
        "nopub",
        &["app:lock", "o", &token, "PUBLISH", "app:ch", "hi"],
    )
    .expect_err("the command is denied");
    assert_eq!(
        error_text(&command),
        "NOPERM this user has no permissions to run the 'publish' command through HBLOCK.FENCED"
    );
    let log: Vec<Value> = redis::cmd("ACL").arg(&["LOG", "2"]).query(&mut c).unwrap();
    let log = format!("{log:?}");
    assert!(log.contains("channel") && log.contains("other"), "{log}");
}

/// Builds tests/fixtures/wrapkeys.c, a naive other module whose
/// WRAPKEYS.RUN wraps a command (getkeys-api, RM_Call) with no depth limit
/// of its own; the .so lives in the returned directory.
pub fn build_wrapkeys() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let so = dir.path().join("wrapkeys.so");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wrapkeys.c");
    let out = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&source)
        .output()
        .expect("a C compiler (cc) for tests/fixtures/wrapkeys.c");
    assert!(
        out.status.success(),
        "cc wrapkeys.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, so)
}

/// `HBLOCK.FENCED lock o token WRAPKEYS.RUN` `levels` times, then `SET data 1`.
fn nested_through_wrapkeys(lock: &str, token: &str, levels: usize, data: &str) -> Vec<String> {
    let mut args = Vec::with_capacity(levels * 5 + 3);
    for _ in 0..levels {
        args.extend(["HBLOCK.FENCED", lock, "o", token, "WRAPKEYS.RUN"].map(String::from));
    }
    args.extend(["SET", data, "1"].map(String::from));
    args
}

/// FENCED nested in FENCED through another module's command: its key
/// lookup calls back into FENCED's (bounded by the depth counter), and its
/// execution calls FENCED again (refused). Both crashed the server at 5,000
/// levels before.
#[test]
fn nesting_through_another_module_is_bounded() {
    let (_dir, wrapkeys) = build_wrapkeys();
    let server = Server::with(Options::default().config("loadmodule", wrapkeys.to_str().unwrap()));
    let mut c = server.conn();
    let token = acquire(&mut c, "app:lock", "o", &["INTERVAL", "600000"])
        .unwrap()
        .to_string();
    // The other module works: its keys are the wrapped command's.
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg(&[
            "GETKEYS",
            "WRAPKEYS.RUN",
            "MSET",
            "app:a",
            "1",
            "app:b",
            "2",
        ])
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["app:a", "app:b"]);
    let nested = nested_through_wrapkeys("app:lock", &token, 10_000, "app:x");
    let mut getkeys = vec!["COMMAND".to_string(), "GETKEYS".to_string()];
    getkeys.extend(nested.iter().cloned());
    let keys = send(&mut c, &getkeys).expect("COMMAND GETKEYS answers");
    let Value::Array(keys) = keys else {
        panic!("{keys:?}")
    };
    assert!(
        (1..=5).contains(&keys.len())
            && keys
                .iter()
                .all(|k| *k == Value::BulkString(b"app:lock".to_vec())),
        "the locks of the first levels only: {keys:?}"
    );
    // Run: the FENCED inside WRAPKEYS.RUN is refused, as the admin and as
    // a restricted user (whose ACL check asks for the keys first).
    let refused = send(&mut c, &nested).expect_err("refused");
    assert!(
        error_text(&refused).contains("HBLOCK commands cannot be fenced"),
        "{refused}"
    );
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">pw",
            "~app:*",
            "+hblock.fenced",
            "+wrapkeys.run",
            "+set",
        ])
        .query(&mut c)
        .unwrap();
    let mut app = server.conn();
    let _: () = redis::cmd("AUTH")
        .arg(&["app", "pw"])
        .query(&mut app)
        .unwrap();
    let refused = send(&mut app, &nested).expect_err("refused");
    assert!(
        error_text(&refused).contains("HBLOCK commands cannot be fenced"),
        "{refused}"
    );
    // One level through the other module is refused too; a plain wrapped
    // command through it runs.
    let one = nested_through_wrapkeys("app:lock", &token, 1, "app:y");
    let mut via = vec![
        "HBLOCK.FENCED",
        "app:lock",
        "o",
        token.as_str(),
        "WRAPKEYS.RUN",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    via.extend(one);
    let refused = send(&mut app, &via).expect_err("two levels: refused");
    assert!(
        error_text(&refused).contains("HBLOCK commands cannot be fenced"),
        "{refused}"
    );
    let ok = send(
        &mut app,
        &[
            "HBLOCK.FENCED",
            "app:lock",
            "o",
            &token,
            "WRAPKEYS.RUN",
            "SET",
            "app:z",
            "v",
        ]
        .map(String::from),
    );
    assert_eq!(ok.unwrap(), Value::Okay);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&["app:x", "app:y"])
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0, "nothing nested ran");
}
