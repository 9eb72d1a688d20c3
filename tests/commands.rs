use crate::support::{acquire, call, error_of, info, info_bytes, info_int, state, Server};
use redis::Value;

#[test]
fn first_lease_gets_token_one_and_others_get_nil() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "alice", &[]), Some(1));
    assert_eq!(acquire(&mut c, "lock", "bob", &[]), None);
    assert_eq!(
        acquire(&mut c, "lock", "alice", &["WAIT", "0"]),
        Some(1),
        "the holder never waits"
    );
    assert_eq!(state(&mut c, "lock"), "held");
}

#[test]
fn holder_reacquire_is_a_heartbeat_with_the_same_token() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "alice", &[]), Some(1));
    assert_eq!(
        acquire(&mut c, "lock", "alice", &["INTERVAL", "250", "MISSES", "7"]),
        Some(1)
    );
    assert_eq!(info_int(&mut c, "lock", "interval"), 250);
    assert_eq!(info_int(&mut c, "lock", "misses"), 7);
    assert_eq!(
        info_int(&mut c, "lock", "beats"),
        1,
        "the re-ACQUIRE counts as a beat"
    );
    assert_eq!(acquire(&mut c, "lock", "alice", &[]), Some(1));
    assert_eq!(
        info_int(&mut c, "lock", "interval"),
        250,
        "terms kept when not given"
    );
}

#[test]
fn beat_counts_and_release_frees_keeping_the_token() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "alice", &[]), Some(1));
    for expected in 1..=3 {
        let beats: i64 = call(&mut c, &[b"HBLOCK.BEAT", b"lock", b"alice", b"1"]).unwrap();
        assert_eq!(beats, expected);
    }
    let released: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"lock", b"alice", b"1"]).unwrap();
    assert_eq!(released, 1);
    let again: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"lock", b"alice", b"1"]).unwrap();
    assert_eq!(again, 0, "a second release ends nothing");
    assert_eq!(state(&mut c, "lock"), "free");
    assert_eq!(
        info_int(&mut c, "lock", "beats"),
        3,
        "beats of the last lease"
    );
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"alice", b"1"]),
        "NOTHELD the lease was released"
    );
    // Each new lease gets the previous token + 1, whoever takes it.
    assert_eq!(acquire(&mut c, "lock", "bob", &[]), Some(2));
    let released: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"lock", b"bob", b"2"]).unwrap();
    assert_eq!(released, 1);
    assert_eq!(acquire(&mut c, "lock", "alice", &[]), Some(3));
    // Not even deleting the key starts the sequence over: tokens never repeat.
    let _: i64 = redis::cmd("DEL").arg("lock").query(&mut c).unwrap();
    assert_eq!(acquire(&mut c, "lock", "carol", &[]), Some(4));
}

#[test]
fn release_answers_zero_for_anyone_but_the_holder() {
    let server = Server::start();
    let mut c = server.conn();
    let missing: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"nokey", b"alice", b"1"]).unwrap();
    assert_eq!(missing, 0);
    assert_eq!(acquire(&mut c, "lock", "alice", &[]), Some(1));
    for args in [
        [&b"HBLOCK.RELEASE"[..], b"lock", b"bob", b"1"],
        [&b"HBLOCK.RELEASE"[..], b"lock", b"alice", b"2"],
    ] {
        let got: i64 = call(&mut c, &args).unwrap();
        assert_eq!(got, 0);
    }
    assert_eq!(state(&mut c, "lock"), "held");
}

#[test]
fn beat_refusals_say_why() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.BEAT", b"nokey", b"alice", b"1"]),
        "NOTHELD no such lock"
    );
    assert_eq!(acquire(&mut c, "lock", "alice", &[]), Some(1));
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"bob", b"1"]),
        "NOTHELD the lock is held by another owner"
    );
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"alice", b"2"]),
        "NOTHELD the token does not match the current lease"
    );
    assert_eq!(
        info_int(&mut c, "lock", "beats"),
        0,
        "refused beats are not counted"
    );
}

#[test]
fn info_fields_in_order_resp2_and_resp3() {
    let server = Server::start();
    let names = [
        "state",
        "owner",
        "token",
        "interval",
        "misses",
        "missed",
        "ttl",
        "beats",
        "age",
        "takeovers",
        "waiters",
        "bound",
        "limit",
        "holders",
    ];
    let mut c = server.conn();
    assert_eq!(info(&mut c, "nokey"), None);
    assert_eq!(
        acquire(
            &mut c,
            "lock",
            "alice",
            &["INTERVAL", "60000", "MISSES", "2"]
        ),
        Some(1)
    );
    for mut conn in [server.conn(), server.conn_resp3()] {
        let pairs = info(&mut conn, "lock").unwrap();
        let got: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, names);
        assert_eq!(pairs[0].1, Value::BulkString(b"held".to_vec()));
        assert_eq!(pairs[1].1, Value::BulkString(b"alice".to_vec()));
        assert_eq!(pairs[2].1, Value::Int(1));
        assert_eq!(pairs[3].1, Value::Int(60000));
        assert_eq!(pairs[4].1, Value::Int(2));
        assert_eq!(pairs[5].1, Value::Int(0));
        match pairs[6].1 {
            Value::Int(ttl) => assert!((100_000..=120_000).contains(&ttl), "ttl {ttl}"),
            ref other => panic!("ttl {other:?}"),
        }
        assert_eq!(pairs[7].1, Value::Int(0));
        match pairs[8].1 {
            Value::Int(age) => assert!((0..20_000).contains(&age), "age {age}"),
            ref other => panic!("age {other:?}"),
        }
        assert_eq!(pairs[9].1, Value::Int(0));
        assert_eq!(pairs[10].1, Value::Int(0));
    }
    let raw: Value = redis::cmd("HBLOCK.INFO")
        .arg("lock")
        .query(&mut server.conn_resp3())
        .unwrap();
    assert!(matches!(raw, Value::Map(_)), "RESP3 gets a map: {raw:?}");
    // A free lock: owner nil, missed 0, ttl -1, age -1.
    let _: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"lock", b"alice", b"1"]).unwrap();
    assert_eq!(state(&mut c, "lock"), "free");
    assert_eq!(info_bytes(&mut c, "lock", "owner"), None);
    assert_eq!(info_int(&mut c, "lock", "missed"), 0);
    assert_eq!(info_int(&mut c, "lock", "ttl"), -1);
    assert_eq!(info_int(&mut c, "lock", "age"), -1);
    assert_eq!(info_int(&mut c, "lock", "token"), 1);
}

#[test]
fn owners_are_binary_safe_up_to_1024_bytes() {
    let server = Server::start();
    let mut c = server.conn();
    let owners: [Vec<u8>; 4] = [
        b"\0".to_vec(),
        b"a\0b\xff\r\n".to_vec(),
        vec![0xAB; 23],
        vec![b'x'; 1024],
    ];
    for (i, owner) in owners.iter().enumerate() {
        let key = format!("lock:{i}");
        let token: i64 = call(&mut c, &[b"HBLOCK.ACQUIRE", key.as_bytes(), owner]).unwrap();
        assert_eq!(token, i as i64 + 1, "one token sequence for the data set");
        assert_eq!(
            info_bytes(&mut c, &key, "owner").as_deref(),
            Some(&owner[..])
        );
        let token = token.to_string();
        let beats: i64 = call(
            &mut c,
            &[b"HBLOCK.BEAT", key.as_bytes(), owner, token.as_bytes()],
        )
        .unwrap();
        assert_eq!(beats, 1);
        let other: Option<i64> =
            call(&mut c, &[b"HBLOCK.ACQUIRE", key.as_bytes(), b"other"]).unwrap();
        assert_eq!(other, None);
    }
}

#[test]
fn keys_with_nul_bytes_work() {
    let server = Server::start();
    let mut c = server.conn();
    let key = b"lock\0with\xffbytes";
    let token: i64 = call(&mut c, &[b"HBLOCK.ACQUIRE", key, b"alice"]).unwrap();
    assert_eq!(token, 1);
    let info: Value = call(&mut c, &[b"HBLOCK.INFO", key]).unwrap();
    assert!(
        matches!(info, Value::Array(ref v) if v.len() == 28),
        "{info:?}"
    );
}
