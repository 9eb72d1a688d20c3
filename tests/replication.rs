use crate::support::{
    acquire, call, digest, error_of, mixed_workload, stable_info, wait_in_sync, Server,
    WORKLOAD_KEYS,
};

#[test]
fn replica_holds_exactly_the_masters_records() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let mut m = master.conn();
    let mut r = replica.conn();
    wait_in_sync(&mut m, &mut r);
    mixed_workload(&mut m);
    // More time-dependent effects: beats, renewals, releases and a takeover.
    for i in 0..20 {
        let key = format!("r:{}", i % 4);
        if let Some(token) = acquire(&mut m, &key, "w", &["INTERVAL", "600000"]) {
            let _: i64 = call(
                &mut m,
                &[
                    b"HBLOCK.BEAT",
                    key.as_bytes(),
                    b"w",
                    token.to_string().as_bytes(),
                ],
            )
            .unwrap();
            if i % 3 == 0 {
                let _: i64 = call(
                    &mut m,
                    &[
                        b"HBLOCK.RELEASE",
                        key.as_bytes(),
                        b"w",
                        token.to_string().as_bytes(),
                    ],
                )
                .unwrap();
            }
        }
    }
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r), "DEBUG DIGEST differs");
    for key in WORKLOAD_KEYS {
        assert_eq!(stable_info(&mut m, key), stable_info(&mut r, key), "{key}");
    }
    // After a full resync (the replica reloads the master's RDB) too.
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port)
        .query(&mut r)
        .unwrap();
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r));
}

#[test]
fn replicas_refuse_writes_and_answer_info() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let mut m = master.conn();
    let mut r = replica.conn();
    assert_eq!(
        acquire(&mut m, "lock", "alice", &["INTERVAL", "600000"]),
        Some(1)
    );
    wait_in_sync(&mut m, &mut r);
    for args in [
        vec![&b"HBLOCK.ACQUIRE"[..], b"lock", b"bob"],
        vec![b"HBLOCK.BEAT", b"lock", b"alice", b"1"],
        vec![b"HBLOCK.RELEASE", b"lock", b"alice", b"1"],
    ] {
        assert!(error_of(&mut r, &args).starts_with("READONLY"), "{args:?}");
    }
    assert_eq!(stable_info(&mut r, "lock"), stable_info(&mut m, "lock"));
    assert_eq!(
        crate::support::counter(&mut r, "acquired"),
        0,
        "a replica decides nothing"
    );
}
