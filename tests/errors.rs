use crate::support::{acquire, call, digest, error_of, show, Server};
use redis::Value;

const WRONG_ARITY: &[&[&[u8]]] = &[
    &[b"HBLOCK.ACQUIRE"],
    &[b"HBLOCK.ACQUIRE", b"k"],
    &[b"HBLOCK.BEAT", b"k", b"o"],
    &[b"HBLOCK.BEAT", b"k", b"o", b"1", b"extra"],
    &[b"HBLOCK.RELEASE", b"k"],
    &[b"HBLOCK.RELEASE", b"k", b"o", b"1", b"extra"],
    &[b"HBLOCK.INFO"],
    &[b"HBLOCK.INFO", b"k", b"extra"],
];

#[test]
fn wrong_arity_gives_the_standard_error() {
    let server = Server::start();
    let mut c = server.conn();
    for args in WRONG_ARITY {
        let err = error_of(&mut c, args);
        let name = String::from_utf8_lossy(args[0]).to_lowercase();
        assert_eq!(
            err,
            format!("ERR wrong number of arguments for '{name}' command"),
            "{:?}",
            show(args)
        );
    }
}

#[test]
fn option_errors_name_the_option_and_range() {
    let server = Server::start();
    let mut c = server.conn();
    let table: &[(&[&[u8]], &str)] = &[
        (
            &[b"INTERVAL", b"0"],
            "ERR INTERVAL must be an integer from 1 to 86400000",
        ),
        (
            &[b"interval", b"86400001"],
            "ERR INTERVAL must be an integer from 1 to 86400000",
        ),
        (
            &[b"INTERVAL", b"-5"],
            "ERR INTERVAL must be an integer from 1 to 86400000",
        ),
        (
            &[b"INTERVAL", b"1.5"],
            "ERR INTERVAL must be an integer from 1 to 86400000",
        ),
        (
            &[b"MISSES", b"0"],
            "ERR MISSES must be an integer from 1 to 10000",
        ),
        (
            &[b"MISSES", b"10001"],
            "ERR MISSES must be an integer from 1 to 10000",
        ),
        (
            &[b"MISSES", b"99999999999999999999"],
            "ERR MISSES must be an integer from 1 to 10000",
        ),
        (
            &[b"WAIT", b"-1"],
            "ERR WAIT must be an integer from 0 to 31536000000",
        ),
        (
            &[b"WAIT", b"9223372036854775807"],
            "ERR WAIT must be an integer from 0 to 31536000000",
        ),
        (
            &[b"WAIT", b"abc"],
            "ERR WAIT must be an integer from 0 to 31536000000",
        ),
        (&[b"INTERVAL"], "ERR syntax error"),
        (&[b"TTL", b"5"], "ERR syntax error"),
        (&[b"INTERVAL", b"5", b"INTERVAL", b"6"], "ERR syntax error"),
        (&[b"MISSES", b"2", b"misses", b"2"], "ERR syntax error"),
        (&[b"WAIT", b"1", b"WAIT", b"1"], "ERR syntax error"),
        (&[b"MISSES", b"2", b"WAIT"], "ERR syntax error"),
    ];
    for (opts, want) in table {
        let mut args: Vec<&[u8]> = vec![b"HBLOCK.ACQUIRE", b"lock", b"alice"];
        args.extend_from_slice(opts);
        assert_eq!(&error_of(&mut c, &args), want, "{:?}", show(&args));
    }
    let exists: i64 = redis::cmd("EXISTS").arg("lock").query(&mut c).unwrap();
    assert_eq!(exists, 0, "rejected ACQUIREs created nothing");
}

#[test]
fn owner_and_token_errors() {
    let server = Server::start();
    let mut c = server.conn();
    let long_owner = vec![b'o'; 1025];
    let owner_err = "ERR owner must be 1 to 1024 bytes";
    let token_err = "ERR token must be an integer from 1 to 9223372036854775807";
    for cmd in [&b"HBLOCK.BEAT"[..], b"HBLOCK.RELEASE"] {
        assert_eq!(error_of(&mut c, &[cmd, b"k", b"", b"1"]), owner_err);
        assert_eq!(error_of(&mut c, &[cmd, b"k", &long_owner, b"1"]), owner_err);
        for token in [
            &b"0"[..],
            b"-1",
            b"abc",
            b"",
            b"1.0",
            b"+1",
            b"9223372036854775808",
        ] {
            assert_eq!(error_of(&mut c, &[cmd, b"k", b"o", token]), token_err);
        }
    }
    assert_eq!(error_of(&mut c, &[b"HBLOCK.ACQUIRE", b"k", b""]), owner_err);
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.ACQUIRE", b"k", &long_owner]),
        owner_err
    );
}

#[test]
fn other_types_get_wrongtype() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SET").arg("str").arg("v").query(&mut c).unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg("list")
        .arg("v")
        .query(&mut c)
        .unwrap();
    for key in [&b"str"[..], b"list"] {
        for args in [
            vec![&b"HBLOCK.ACQUIRE"[..], key, b"o"],
            vec![b"HBLOCK.BEAT", key, b"o", b"1"],
            vec![b"HBLOCK.RELEASE", key, b"o", b"1"],
            vec![b"HBLOCK.INFO", key],
        ] {
            let err = error_of(&mut c, &args);
            assert!(err.starts_with("WRONGTYPE "), "{:?}: {err}", show(&args));
        }
    }
    let v: String = redis::cmd("GET").arg("str").query(&mut c).unwrap();
    assert_eq!(v, "v");
    // And a lock is the wrong type for string commands.
    acquire(&mut c, "lock", "o", &[]);
    let err = error_of(&mut c, &[b"GET", b"lock"]);
    assert!(err.starts_with("WRONGTYPE"), "{err}");
}

#[test]
fn apply_is_refused_to_normal_clients() {
    let server = Server::start();
    let mut c = server.conn();
    let args: &[&[u8]] = &[
        b"HBLOCK.APPLY",
        b"lock",
        b"1",
        b"mallory",
        b"99",
        b"1000",
        b"3",
        b"0",
        b"0",
        b"0",
        b"0",
    ];
    assert!(error_of(&mut c, args).starts_with("ERR HBLOCK.APPLY is internal"));
    let exists: i64 = redis::cmd("EXISTS").arg("lock").query(&mut c).unwrap();
    assert_eq!(exists, 0);
    // Nor can a script or a transaction smuggle it in.
    let lua = redis::cmd("EVAL")
        .arg("return redis.call('HBLOCK.APPLY', KEYS[1], '1', 'm', '9', '1000', '3', '0', '0', '0', '0')")
        .arg(1)
        .arg("lock")
        .query::<Value>(&mut c);
    assert!(lua.is_err(), "{lua:?}");
    let exists: i64 = redis::cmd("EXISTS").arg("lock").query(&mut c).unwrap();
    assert_eq!(exists, 0);
}

/// Not a valid token, INTERVAL, MISSES or WAIT (0 is a valid WAIT: left out).
const BAD_NUMBERS: [&[u8]; 11] = [
    b"-1",
    b"-0",
    b"+1",
    b"01",
    b"1e3",
    b" 1",
    b"abc",
    b"",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551616",
];

/// Every malformed call of the three commands on `key`.
fn malformed_calls(key: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let long_owner = vec![b'z'; 1025];
    let huge_owner = vec![b'z'; 1 << 20];
    let bad_owners: [&[u8]; 3] = [b"", &long_owner, &huge_owner];
    let mut calls: Vec<Vec<&[u8]>> = Vec::new();
    for owner in bad_owners {
        calls.push(vec![b"HBLOCK.ACQUIRE", key, owner]);
        calls.push(vec![b"HBLOCK.BEAT", key, owner, b"1"]);
        calls.push(vec![b"HBLOCK.RELEASE", key, owner, b"1"]);
    }
    for n in BAD_NUMBERS {
        calls.push(vec![b"HBLOCK.BEAT", key, b"alice", n]);
        calls.push(vec![b"HBLOCK.RELEASE", key, b"alice", n]);
        for option in [&b"INTERVAL"[..], b"MISSES", b"WAIT"] {
            calls.push(vec![b"HBLOCK.ACQUIRE", key, b"x", option, n]);
        }
        calls.push(vec![
            b"HBLOCK.ACQUIRE",
            key,
            b"x",
            b"MISSES",
            b"2",
            b"BOGUS",
            n,
        ]);
    }
    calls.push(vec![b"HBLOCK.BEAT", key, b"alice", b"0"]);
    calls.push(vec![b"HBLOCK.ACQUIRE", key, b"x", b"INTERVAL", b"0"]);
    calls.push(vec![b"HBLOCK.ACQUIRE", key, b"x", b"MISSES", b"0"]);
    for extra in [0usize, 1, 3, 4, 5] {
        let mut args: Vec<&[u8]> = vec![b"HBLOCK.BEAT", key];
        args.extend(std::iter::repeat_n(&b"1"[..], extra));
        calls.push(args.clone());
        args[0] = b"HBLOCK.RELEASE";
        calls.push(args);
    }
    calls
        .into_iter()
        .map(|args| args.into_iter().map(<[u8]>::to_vec).collect())
        .collect()
}

/// Every command with malformed input, plus well-formed calls by non-holders:
/// the server stays up and the data set (DEBUG DIGEST) does not change.
#[test]
fn bad_input_sweep_changes_nothing() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "held", "alice", &["INTERVAL", "600000"]),
        Some(1)
    );
    assert_eq!(
        acquire(&mut c, "free", "bob", &["INTERVAL", "600000"]),
        Some(2)
    );
    let _: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"free", b"bob", b"2"]).unwrap();
    let _: () = redis::cmd("SET").arg("str").arg("v").query(&mut c).unwrap();
    let before = digest(&mut c);

    let mut calls = 0;
    let mut refuse = |c: &mut redis::Connection, args: &[&[u8]]| {
        let _ = error_of(c, args);
        calls += 1;
    };
    for key in [&b"held"[..], b"free", b"str", b"missing"] {
        for args in malformed_calls(key) {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            refuse(&mut c, &args);
        }
    }
    // Well-formed calls that hold nothing change nothing either.
    let busy: Option<i64> = call(
        &mut c,
        &[b"HBLOCK.ACQUIRE", b"held", b"\0\xff", b"INTERVAL", b"5"],
    )
    .unwrap();
    assert_eq!(busy, None);
    for (key, owner, token) in [
        (&b"held"[..], &b"bob"[..], &b"1"[..]),
        (b"held", b"alice", b"2"),
        (b"free", b"bob", b"1"),
        (b"missing", b"alice", b"1"),
    ] {
        refuse(&mut c, &[b"HBLOCK.BEAT", key, owner, token]);
        let released: i64 = call(&mut c, &[b"HBLOCK.RELEASE", key, owner, token]).unwrap();
        assert_eq!(released, 0);
    }
    assert!(calls > 250, "{calls}");
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(digest(&mut c), before, "the data set changed");
    let missing: i64 = redis::cmd("EXISTS").arg("missing").query(&mut c).unwrap();
    assert_eq!(missing, 0);
}
