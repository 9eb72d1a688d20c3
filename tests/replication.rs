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

/// Changes not yet counted for save points (every propagated change counts).
fn unsaved_changes(c: &mut redis::Connection) -> i64 {
    crate::support::info_field(c, "persistence", "rdb_changes_since_last_save")
        .and_then(|v| v.parse().ok())
        .expect("rdb_changes_since_last_save")
}

fn beat(c: &mut redis::Connection, key: &str, token: i64) {
    let token = token.to_string();
    let beat: Result<i64, _> = call(c, &[b"HBLOCK.BEAT", key.as_bytes(), b"w", token.as_bytes()]);
    assert!(beat.is_ok(), "BEAT {key}: {beat:?}");
}

/// With no AOF, no save points and no replica, nothing can read what the
/// module replicates, so it builds nothing (propagation.rs). A replica that
/// attaches later gets every lock in its full resync, and from then on every
/// change reaches it.
#[test]
fn a_replica_attached_later_holds_exactly_the_masters_records() {
    let master = Server::start(); // --save "", appendonly no
    let mut m = master.conn();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let key = format!("late:{i}");
        let token = acquire(&mut m, &key, "w", &["INTERVAL", "600000"]).expect("granted");
        beat(&mut m, &key, token);
        tokens.push((key, token));
    }
    let _: i64 = call(
        &mut m,
        &[
            b"HBLOCK.RELEASE",
            b"late:0",
            b"w",
            tokens[0].1.to_string().as_bytes(),
        ],
    )
    .unwrap();
    assert_eq!(unsaved_changes(&mut m), 0, "nothing was propagated");

    let replica = Server::replica_of(&master);
    let mut r = replica.conn();
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r), "after the full resync");
    // From now on every change is propagated.
    for (key, token) in tokens.iter().skip(1) {
        beat(&mut m, key, *token);
    }
    assert!(acquire(&mut m, "late:new", "w", &["INTERVAL", "10", "MISSES", "1"]).is_some());
    crate::support::wait_for_state(&mut m, "late:new", "expired");
    mixed_workload(&mut m);
    wait_in_sync(&mut m, &mut r);
    assert!(unsaved_changes(&mut m) > 0, "changes are propagated now");
    assert_eq!(digest(&mut m), digest(&mut r), "after more changes");
    for key in ["late:1", "late:5", "late:new"] {
        assert_eq!(stable_info(&mut m, key), stable_info(&mut r, key), "{key}");
    }
    // The replica going away does not turn it off again (it may come back
    // with PSYNC, which needs the backlog to hold every change).
    drop(r);
    drop(replica);
    beat(&mut m, "late:1", tokens[1].1);
    let before = unsaved_changes(&mut m);
    beat(&mut m, "late:1", tokens[1].1);
    assert!(unsaved_changes(&mut m) > before, "still propagated");
}

/// CONFIG SET of save points or appendonly turns propagation back on at once.
#[test]
fn save_points_or_aof_turned_on_get_every_change() {
    let master = Server::start();
    let mut m = master.conn();
    let token = acquire(&mut m, "cfg", "w", &["INTERVAL", "600000"]).expect("granted");
    beat(&mut m, "cfg", token);
    assert_eq!(unsaved_changes(&mut m), 0);
    crate::support::config_set(&mut m, "save", "3600 1");
    beat(&mut m, "cfg", token);
    assert!(unsaved_changes(&mut m) > 0, "counted for save points");
    crate::support::config_set(&mut m, "save", "");
    let _: () = redis::cmd("SAVE").query(&mut m).unwrap();
    beat(&mut m, "cfg", token);
    assert_eq!(unsaved_changes(&mut m), 0, "off again without save points");

    crate::support::config_set(&mut m, "appendonly", "yes");
    let rewritten = crate::support::eventually(std::time::Duration::from_secs(10), || {
        let mut info = |f| crate::support::info_field(&mut m, "persistence", f);
        (info("aof_rewrite_in_progress")? == "0" && info("aof_rewrite_scheduled")? == "0")
            .then_some(())
    });
    assert!(rewritten.is_some(), "the AOF was written");
    beat(&mut m, "cfg", token);
    beat(&mut m, "cfg", token);
    let beats = crate::support::info_int(&mut m, "cfg", "beats");
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut m).unwrap();
    assert_eq!(
        crate::support::info_int(&mut m, "cfg", "beats"),
        beats,
        "beats in the AOF"
    );
}
