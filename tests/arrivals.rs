//! Records that arrive at a key name without a grant (RESTORE, COPY, RENAME,
//! MOVE, SWAPDB, MIGRATE) never make an older lease live again, and forged
//! RESTORE payloads cannot burn the token space of other keys.

use crate::support::cluster::Cluster;
use crate::support::dump::{forge, Record};
use crate::support::{acquire, call, error_of, eventually, state, Options, Server};
use redis::Connection;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LONG: &[&str] = &["INTERVAL", "600000"];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn dump(c: &mut Connection, key: &str) -> Vec<u8> {
    redis::cmd("DUMP").arg(key).query(c).unwrap()
}

fn restore(c: &mut Connection, key: &str, payload: &[u8], replace: bool) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("RESTORE");
    cmd.arg(key).arg(0).arg(payload);
    if replace {
        cmd.arg("REPLACE");
    }
    cmd.query(c)
}

/// What BEAT, CHECK and a fenced write answer for (owner, token): "held"
/// when all three accept it, else the NOTHELD texts (they must all refuse).
fn holds(c: &mut Connection, key: &str, owner: &str, token: i64) -> bool {
    let t = token.to_string();
    // In the lock's slot (a cluster refuses CROSSSLOT).
    let written = format!("{{{key}}}:fenced");
    let check: redis::RedisResult<String> = call(
        c,
        &[
            b"HBLOCK.CHECK",
            key.as_bytes(),
            owner.as_bytes(),
            t.as_bytes(),
        ],
    );
    let fenced: redis::RedisResult<String> = call(
        c,
        &[
            b"HBLOCK.FENCED",
            key.as_bytes(),
            owner.as_bytes(),
            t.as_bytes(),
            b"SET",
            written.as_bytes(),
            t.as_bytes(),
        ],
    );
    let beat: redis::RedisResult<i64> = call(
        c,
        &[
            b"HBLOCK.BEAT",
            key.as_bytes(),
            owner.as_bytes(),
            t.as_bytes(),
        ],
    );
    let answers = [check.is_ok(), fenced.is_ok(), beat.is_ok()];
    for err in [check.err(), fenced.err(), beat.err()]
        .into_iter()
        .flatten()
    {
        assert_eq!(err.code(), Some("NOTHELD"), "{err:?}");
    }
    assert!(
        answers.iter().all(|a| *a) || answers.iter().all(|a| !*a),
        "BEAT, CHECK and FENCED disagree: {answers:?}"
    );
    answers[0]
}

fn token_of(c: &mut Connection, key: &str) -> i64 {
    crate::support::info_int(c, key, "token")
}

#[test]
fn restore_of_an_old_dump_never_makes_its_lease_live_again() {
    let server = Server::start();
    let mut c = server.conn();
    let t1 = acquire(&mut c, "L", "A", LONG).unwrap();
    let old = dump(&mut c, "L");
    let _: i64 = call(
        &mut c,
        &[b"HBLOCK.RELEASE", b"L", b"A", t1.to_string().as_bytes()],
    )
    .unwrap();
    let t2 = acquire(&mut c, "L", "B", LONG).unwrap();
    restore(&mut c, "L", &old, true).unwrap();
    assert!(!holds(&mut c, "L", "A", t1), "A's old lease came back");
    assert!(!holds(&mut c, "L", "B", t2), "B's record was replaced");
    assert_eq!(state(&mut c, "L"), "free");
    let t3 = acquire(&mut c, "L", "C", LONG).unwrap();
    assert!(t3 > t2, "{t3} > {t2}");
    // Without REPLACE, into a deleted name: still ended.
    let _: i64 = redis::cmd("DEL").arg("L").query(&mut c).unwrap();
    restore(&mut c, "L", &old, false).unwrap();
    assert!(!holds(&mut c, "L", "A", t1));
    // The DUMP of the live lease, restored while it is still held: a second
    // record of it is not a second holder.
    let t4 = acquire(&mut c, "L2", "D", LONG).unwrap();
    let payload = dump(&mut c, "L2");
    restore(&mut c, "L2copy", &payload, false).unwrap();
    assert!(holds(&mut c, "L2", "D", t4), "the original is untouched");
    assert!(!holds(&mut c, "L2copy", "D", t4));
}

#[test]
fn a_restore_from_another_server_keeps_its_lease_and_raises_the_floor() {
    let old = Server::start();
    let mut o = old.conn();
    for i in 0..5 {
        acquire(&mut o, &format!("other:{i}"), "x", &[]).unwrap();
    }
    let t = acquire(&mut o, "L", "A", LONG).unwrap();
    let payload = dump(&mut o, "L");
    let new = Server::start();
    let mut c = new.conn();
    restore(&mut c, "L", &payload, false).unwrap();
    assert!(
        holds(&mut c, "L", "A", t),
        "above this server's floor: still held"
    );
    let next = acquire(&mut c, "fresh", "B", &[]).unwrap();
    assert!(
        next > t,
        "the floor rose to the restored token: {next} > {t}"
    );
}

#[test]
fn copy_rename_move_and_swapdb_end_the_lease_at_the_new_name() {
    let server = Server::start();
    let mut c = server.conn();
    let ta = acquire(&mut c, "M", "A", LONG).unwrap();
    let tb = acquire(&mut c, "N", "B", LONG).unwrap();
    // COPY onto a lock with a newer token: the copy is free, the source held.
    let copied: i64 = redis::cmd("COPY")
        .arg("M")
        .arg("N")
        .arg("REPLACE")
        .query(&mut c)
        .unwrap();
    assert_eq!(copied, 1);
    assert!(!holds(&mut c, "N", "A", ta));
    assert!(holds(&mut c, "M", "A", ta));
    assert_eq!(state(&mut c, "N"), "free");
    assert!(acquire(&mut c, "N", "C", LONG).unwrap() > tb);
    // RENAME onto a newer lock and onto a new name.
    let tn = token_of(&mut c, "N");
    let _: () = redis::cmd("RENAME")
        .arg("M")
        .arg("N")
        .query(&mut c)
        .unwrap();
    assert!(!holds(&mut c, "N", "A", ta));
    assert!(acquire(&mut c, "N", "D", LONG).unwrap() > tn);
    let te = acquire(&mut c, "E", "A", LONG).unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("E")
        .arg("E2")
        .query(&mut c)
        .unwrap();
    assert!(!holds(&mut c, "E2", "A", te));
    // MOVE to db 1.
    let tm = acquire(&mut c, "moved", "A", LONG).unwrap();
    let _: i64 = redis::cmd("MOVE")
        .arg("moved")
        .arg(1)
        .query(&mut c)
        .unwrap();
    let mut db1 = redis::Client::open(format!("{}1", server.url()))
        .and_then(|client| client.get_connection())
        .unwrap();
    assert!(!holds(&mut db1, "moved", "A", tm));
    // SWAPDB: the held leases of both databases end.
    let t0 = acquire(&mut c, "S", "A", LONG).unwrap();
    let t1 = acquire(&mut db1, "S", "B", LONG).unwrap();
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut c).unwrap();
    assert!(
        !holds(&mut c, "S", "B", t1),
        "db 1's lease under db 0's name"
    );
    assert!(
        !holds(&mut db1, "S", "A", t0),
        "db 0's lease under db 1's name"
    );
    assert!(acquire(&mut c, "S", "C", LONG).unwrap() > t1.max(t0));
}

#[test]
fn a_bound_lock_renamed_loses_its_binding_with_its_lease() {
    let server = Server::start();
    let mut c = server.conn();
    let mut bound = server.conn();
    let t = acquire(
        &mut bound,
        "B1",
        "A",
        &["INTERVAL", "600000", "BIND", "100"],
    )
    .unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("B1")
        .arg("B2")
        .query(&mut c)
        .unwrap();
    assert!(!holds(&mut c, "B2", "A", t), "renamed: the lease ended");
    let t2 = acquire(&mut c, "B2", "N", LONG).unwrap();
    assert!(t2 > t);
    drop(bound);
    // After the grace, the closed connection must not release the new holder.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        holds(&mut c, "B2", "N", t2),
        "the new holder kept its lease"
    );
}

#[test]
fn a_waiter_on_the_new_name_is_granted_when_a_renamed_lease_ends_there() {
    let server = Server::start();
    let mut c = server.conn();
    acquire(&mut c, "W", "A", LONG).unwrap();
    acquire(&mut c, "src", "B", LONG).unwrap();
    let url = server.url();
    let waiter = std::thread::spawn(move || {
        let mut w = redis::Client::open(url).unwrap().get_connection().unwrap();
        acquire(&mut w, "W", "waiter", &["WAIT", "10000"])
    });
    let queued = eventually(Duration::from_secs(5), || {
        (crate::support::info_int(&mut c, "W", "waiters") == 1).then_some(())
    });
    assert!(queued.is_some());
    let _: () = redis::cmd("RENAME")
        .arg("src")
        .arg("W")
        .query(&mut c)
        .unwrap();
    let granted = waiter.join().unwrap();
    assert!(granted.is_some(), "the waiter was granted the freed name");
}

fn template(c: &mut Connection) -> Vec<u8> {
    acquire(c, "template", "alice", LONG).unwrap();
    dump(c, "template")
}

#[test]
fn forged_payloads_round_trip_and_extreme_tokens_are_refused() {
    let server = Server::start();
    let mut c = server.conn();
    let real = template(&mut c);
    // A forged record above the floor loads as written (CRC and layout right).
    let mut record = Record::held(b"forged \x00 owner", 1000, now_ms());
    record.interval = 86_400_000;
    record.misses = 10_000;
    record.beats = 7;
    record.takeovers = 3;
    restore(&mut c, "forged", &forge(&real, &record), false).unwrap();
    assert!(holds(&mut c, "forged", "forged \x00 owner", 1000));
    assert_eq!(crate::support::info_int(&mut c, "forged", "takeovers"), 3);
    assert_eq!(crate::support::info_int(&mut c, "forged", "misses"), 10_000);
    let before = acquire(&mut c, "probe:1", "x", &[]).unwrap();
    for token in [u64::MAX >> 1, 1 << 53, (1 << 53) - 1, 1 << 52] {
        let payload = forge(&real, &Record::held(b"mallory", token, now_ms()));
        let err = restore(&mut c, "mallory:k", &payload, true).unwrap_err();
        assert!(
            format!("{err:?}").contains("Bad data format"),
            "token {token}: {err:?}"
        );
    }
    let after = acquire(&mut c, "probe:2", "x", &[]).unwrap();
    assert_eq!(after, before + 1, "the floor did not move");
    // Just below the limit: accepted, and 2^52 tokens are left below 2^53.
    let payload = forge(&real, &Record::held(b"mallory", (1 << 52) - 1, now_ms()));
    restore(&mut c, "mallory:k", &payload, true).unwrap();
    let next = acquire(&mut c, "probe:3", "x", &[]).unwrap();
    assert_eq!(next, 1 << 52, "2^52 tokens are left below 2^53");
}

#[test]
fn a_user_limited_to_its_own_keys_cannot_burn_other_keys_tokens() {
    let server = Server::start();
    let mut admin = server.conn();
    let real = template(&mut admin);
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "mallory",
            "on",
            ">pw",
            "~mallory:*",
            "+restore",
            "+hblock.acquire",
        ])
        .query(&mut admin)
        .unwrap();
    let mut m = server.conn_as("mallory", "pw");
    let before = acquire(&mut admin, "app:lock", "svc", &[]).unwrap();
    let forged = forge(&real, &Record::held(b"m", (1u64 << 63) - 1, now_ms()));
    assert!(restore(&mut m, "mallory:x", &forged, true).is_err());
    let forged = forge(&real, &Record::held(b"m", (1u64 << 52) - 1, now_ms()));
    restore(&mut m, "mallory:x", &forged, true).unwrap();
    // Other keys still get tokens, exact below 2^53.
    let _: i64 = call(
        &mut admin,
        &[
            b"HBLOCK.RELEASE",
            b"app:lock",
            b"svc",
            before.to_string().as_bytes(),
        ],
    )
    .unwrap();
    let t = acquire(&mut admin, "app:lock", "svc", &[]).unwrap();
    assert!(t > before && t < (1 << 53), "{t}");
    // HBLOCK.FLOOR RESET is an admin command: with the ACL of a user that
    // may call it, and never from a replica. The operator's way out: the
    // floor falls to the highest token of the records left.
    let _: i64 = redis::cmd("DEL")
        .arg("mallory:x")
        .query(&mut admin)
        .unwrap();
    let _: i64 = redis::cmd("DEL").arg("app:lock").query(&mut admin).unwrap();
    let denied = error_of(&mut m, &[b"HBLOCK.FLOOR", b"RESET"]);
    assert!(denied.starts_with("NOPERM"), "{denied}");
    // The usual restricted profile: on Redis 7.0 module commands have no
    // ACL category, so -@admin alone cannot take RESET away; it asks for
    // CONFIG's rights itself.
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "ops",
            "on",
            ">pw",
            "~*",
            "&*",
            "+@all",
            "-@dangerous",
            "-@admin",
        ])
        .query(&mut admin)
        .unwrap();
    let mut ops = server.conn_as("ops", "pw");
    let denied = error_of(&mut ops, &[b"HBLOCK.FLOOR", b"RESET"]);
    assert!(denied.starts_with("NOPERM"), "{denied}");
    let floor: i64 = call(&mut admin, &[b"HBLOCK.FLOOR", b"RESET"]).unwrap();
    assert!(floor < 1 << 40, "{floor}");
    let low = acquire(&mut admin, "app:lock", "svc", &[]).unwrap();
    assert_eq!(low, floor + 1);
}

#[test]
fn exhausted_tokens_name_a_remedy_that_works() {
    // A floor of 2^53 - 1 can only come from trusted history: here an AOF.
    let options = Options::default()
        .config("appendonly", "yes")
        .config("aof-use-rdb-preamble", "no");
    let mut server = Server::with(options);
    let mut c = server.conn();
    acquire(&mut c, "kept", "a", &[]).unwrap();
    let _: () = redis::cmd("SHUTDOWN").query(&mut c).unwrap_or(());
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    let aof_dir = server.dir().join("appendonlydir");
    let incr = std::fs::read_dir(&aof_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .expect("an incr AOF file");
    let mut extra = Vec::new();
    crate::support::raw::encode(&[&b"HBLOCK.FLOOR"[..], b"9007199254740991"], &mut extra);
    let mut aof = std::fs::read(&incr).unwrap();
    aof.extend_from_slice(&extra);
    std::fs::write(&incr, aof).unwrap();
    server.relaunch();
    let mut c = server.conn();
    let err = error_of(&mut c, &[b"HBLOCK.ACQUIRE", b"new", b"a"]);
    assert!(err.contains("HBLOCK.FLOOR RESET"), "{err}");
    let floor: i64 = call(&mut c, &[b"HBLOCK.FLOOR", b"RESET"]).unwrap();
    assert!((1..1 << 40).contains(&floor), "{floor}");
    let t = acquire(&mut c, "new", "a", &[]).unwrap();
    assert_eq!(t, floor + 1);
}

#[test]
fn migrate_to_another_cluster_node_keeps_a_live_lease_live() {
    let cluster = Cluster::start();
    let key = "migrating:lock";
    let from = cluster.master_of(key);
    let to = *cluster.masters().iter().find(|&&m| m != from).unwrap();
    let mut src = cluster.nodes[from].conn();
    let mut dst = cluster.nodes[to].conn();
    let t = acquire(&mut src, key, "holder", LONG).unwrap();
    // The target's floor above the migrating token: what MIGRATE sends
    // (RESTORE-ASKING) must keep the lease anyway.
    for i in 0..3 {
        let other = (0..10_000)
            .map(|n| format!("floor:{i}:{n}"))
            .find(|k| {
                let slot: i64 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(k)
                    .query(&mut dst)
                    .unwrap();
                let owner = cluster_slot_owner(&mut dst, slot);
                owner == cluster.nodes[to].port
            })
            .unwrap();
        acquire(&mut dst, &other, "x", &[]).unwrap();
    }
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut src)
        .unwrap();
    let id = |c: &mut Connection| -> String { redis::cmd("CLUSTER").arg("MYID").query(c).unwrap() };
    let (src_id, dst_id) = (id(&mut src), id(&mut dst));
    let _: () = redis::cmd("CLUSTER")
        .arg(&["SETSLOT", &slot.to_string(), "IMPORTING", &src_id])
        .query(&mut dst)
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["SETSLOT", &slot.to_string(), "MIGRATING", &dst_id])
        .query(&mut src)
        .unwrap();
    let _: () = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(cluster.nodes[to].port)
        .arg(key)
        .arg(0)
        .arg(5000)
        .query(&mut src)
        .unwrap();
    for node in [&mut dst, &mut src] {
        let _: () = redis::cmd("CLUSTER")
            .arg(&["SETSLOT", &slot.to_string(), "NODE", &dst_id])
            .query(node)
            .unwrap();
    }
    assert!(
        holds(&mut dst, key, "holder", t),
        "the migrated lease is live"
    );
    let mut cc = cluster.client();
    let beat: i64 = redis::cmd("HBLOCK.BEAT")
        .arg(key)
        .arg("holder")
        .arg(t)
        .query(&mut cc)
        .unwrap();
    assert!(beat >= 1, "beats through the cluster client: {beat}");
    assert_eq!(
        crate::support::info_int(&mut cc, key, "token"),
        t,
        "same token"
    );
}

/// The port of the master serving `slot`, from CLUSTER SLOTS.
fn cluster_slot_owner(c: &mut Connection, slot: i64) -> u16 {
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(c).unwrap();
    for range in ranges {
        let redis::Value::Array(parts) = range else {
            continue;
        };
        let (
            Some(redis::Value::Int(lo)),
            Some(redis::Value::Int(hi)),
            Some(redis::Value::Array(master)),
        ) = (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        if (*lo..=*hi).contains(&slot) {
            if let Some(redis::Value::Int(port)) = master.get(1) {
                return *port as u16;
            }
        }
    }
    0
}

/// Forged RESTOREs at the extremes of every field, then every command on
/// the restored keys, a SAVE and a reload: the server stays up, each reply is
/// a value or an error, and tokens granted afterwards stay below 2^53.
#[test]
fn forged_restores_at_the_extremes_of_every_field_are_refused_or_harmless() {
    use crate::support::rng::Rng;
    let server = Server::start();
    let mut c = server.conn();
    let real = template(&mut c);
    let now = now_ms();
    let u: [u64; 9] = [0, 1, 2, 3, 10_001, 86_400_001, 1 << 52, 1 << 63, u64::MAX];
    let times: [i64; 7] = [i64::MIN, -1, 0, now - 600_000, now, now + 600_000, i64::MAX];
    let owners: [&[u8]; 5] = [b"", b"o", b"\x00\xff\r\n", &[b'L'; 1024], &[b'L'; 1025]];
    let mut rng = Rng::new(23);
    let mut kept = 0;
    for round in 0..2_000u64 {
        let pick = |rng: &mut Rng, list: &[u64]| list[rng.below(list.len() as u64) as usize];
        let record = Record {
            phase: pick(&mut rng, &u[..5]),
            owner: owners[rng.below(5) as usize].to_vec(),
            token: pick(&mut rng, &u),
            interval: [0, 1, 1000, 86_400_000, 86_400_001, u64::MAX][rng.below(6) as usize],
            misses: [0, 1, 3, 10_000, 10_001, u64::MAX][rng.below(6) as usize],
            beats: pick(&mut rng, &u),
            granted: times[rng.below(7) as usize],
            last_beat: times[rng.below(7) as usize],
            takeovers: pick(&mut rng, &u),
        };
        let key = format!("forged:{}", round % 50);
        if restore(&mut c, &key, &forge(&real, &record), true).is_ok() {
            kept += 1;
        }
        let token = record.token.min(i64::MAX as u64).to_string();
        let owner: &[u8] = &record.owner;
        for args in [
            vec![&b"HBLOCK.INFO"[..], key.as_bytes()],
            vec![b"HBLOCK.BEAT", key.as_bytes(), owner, token.as_bytes()],
            vec![b"HBLOCK.CHECK", key.as_bytes(), owner, token.as_bytes()],
            vec![
                b"HBLOCK.ACQUIRE",
                key.as_bytes(),
                b"other",
                b"INTERVAL",
                b"5",
            ],
            vec![
                b"HBLOCK.WATCH",
                key.as_bytes(),
                b"SEEN",
                token.as_bytes(),
                b"TIMEOUT",
                b"1",
            ],
            vec![b"HBLOCK.RELEASE", key.as_bytes(), owner, token.as_bytes()],
        ] {
            let _: redis::RedisResult<redis::Value> = call(&mut c, &args);
        }
    }
    assert!(kept > 0, "some forged records are valid");
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let t = acquire(&mut c, "after:forgery", "x", &[]).unwrap();
    assert!(t > 0 && t < 1 << 53, "{t}");
    assert!(!server.log().contains("crashed"), "{}", server.log());
}

/// Every arrival on a master with a replica and an AOF: the replica and a
/// restart from the AOF end with the master's records.
#[test]
fn replicas_and_the_aof_end_with_the_masters_records() {
    // `appendfsync always`: the SIGKILL below must not lose an answered write
    // (everysec may postpone one behind a slow background fsync).
    let mut master = Server::with(
        Options::default()
            .config("appendonly", "yes")
            .config("appendfsync", "always"),
    );
    let replica = Server::replica_of(&master);
    let mut c = master.conn();
    let mut r = replica.conn();
    let t1 = acquire(&mut c, "L", "A", LONG).unwrap();
    // The replica follows the stream from here (not a full sync afterwards).
    crate::support::wait_in_sync(&mut c, &mut r);
    let old = dump(&mut c, "L");
    let _: i64 = call(
        &mut c,
        &[b"HBLOCK.RELEASE", b"L", b"A", t1.to_string().as_bytes()],
    )
    .unwrap();
    acquire(&mut c, "L", "B", LONG).unwrap();
    restore(&mut c, "L", &old, true).unwrap();
    // From another server, above this floor: held.
    let other = Server::start();
    let mut o = other.conn();
    for i in 0..20 {
        acquire(&mut o, &format!("x:{i}"), "x", &[]).unwrap();
    }
    let high = acquire(&mut o, "H", "A", LONG).unwrap();
    restore(&mut c, "H", &dump(&mut o, "H"), false).unwrap();
    acquire(&mut c, "M", "A", LONG).unwrap();
    let _: i64 = redis::cmd("COPY").arg("M").arg("M2").query(&mut c).unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("M")
        .arg("M3")
        .query(&mut c)
        .unwrap();
    let mut db1 = redis::Client::open(format!("{}1", master.url()))
        .and_then(|client| client.get_connection())
        .unwrap();
    acquire(&mut db1, "S", "A", LONG).unwrap();
    let _: () = redis::cmd("SWAPDB").arg(1).arg(2).query(&mut c).unwrap();
    crate::support::wait_in_sync(&mut c, &mut r);
    let mut r2 = redis::Client::open(format!("{}2", replica.url()))
        .and_then(|client| client.get_connection())
        .unwrap();
    assert_eq!(state(&mut r2, "S"), "free", "swapped on the replica too");
    assert_eq!(
        crate::support::digest(&mut c),
        crate::support::digest(&mut r)
    );
    assert_eq!(state(&mut r, "L"), "free", "the replica's L ended too");
    assert!(holds(&mut c, "H", "A", high));
    master.crash_and_restart();
    let mut c = master.conn();
    assert!(
        !holds(&mut c, "L", "A", t1),
        "the AOF replay did not revive it"
    );
    assert_eq!(state(&mut c, "L"), "free");
    assert!(holds(&mut c, "H", "A", high));
}
