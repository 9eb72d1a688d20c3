//! What a BEAT sends to replicas and the AOF: a beat delta (`HBLOCK.APPLY key
//! <B token beats last-beat>`) when it was only a beat, the whole record
//! otherwise; both rebuild exactly the master's record.

use crate::support::{acquire, digest, digest_value, info_int, wait_in_sync, Options, Server};
use redis::Connection;

fn beat(c: &mut Connection, key: &str, owner: &[u8], token: i64) -> redis::RedisResult<i64> {
    redis::cmd("HBLOCK.BEAT")
        .arg(key)
        .arg(owner)
        .arg(token)
        .query(c)
}

/// The AOF's incremental file (the manifest's `type i` entry).
fn incr_file(server: &Server) -> std::path::PathBuf {
    let dir = server.dir().join("appendonlydir");
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let name = manifest
        .lines()
        .find(|l| l.contains("type i"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("an incr file in the manifest")
        .to_string();
    dir.join(name)
}

/// How many `HBLOCK.APPLY key <beat delta>` commands an AOF holds: three
/// arguments after `*3`, the last starting with the delta's tag `B`.
fn deltas_in(aof: &[u8]) -> usize {
    let marker = b"$12\r\nHBLOCK.APPLY\r\n";
    aof.windows(marker.len())
        .enumerate()
        .filter(|(at, w)| *w == marker && aof[..*at].ends_with(b"*3\r\n"))
        .filter(|(at, _)| {
            // skip the key: $len\r\nkey\r\n, then $len\r\nB...
            let rest = &aof[at + marker.len()..];
            let mut lines = rest.split(|&b| b == b'\n');
            let (_, _, _, delta) = (lines.next(), lines.next(), lines.next(), lines.next());
            delta.is_some_and(|d| d.first() == Some(&b'B'))
        })
        .count()
}

#[test]
fn beats_replay_exactly_on_a_replica_and_from_the_aof() {
    let options = Options::default()
        .config("appendonly", "yes")
        .config("appendfsync", "always");
    let mut master = Server::with(options);
    let replica = Server::replica_of(&master);
    let mut m = master.conn();
    let mut r = replica.conn();
    wait_in_sync(&mut m, &mut r);
    let long_owner = vec![b'L'; 1024];
    let binary_owner = b"own\0er\r\n\xff".to_vec();
    let owners: [(&str, &[u8]); 3] = [
        ("d:short", b"owner-17-bytes-xx"),
        ("d:long", &long_owner),
        ("d:binary", &binary_owner),
    ];
    let mut tokens = Vec::new();
    for (key, owner) in owners {
        let token: i64 = redis::cmd("HBLOCK.ACQUIRE")
            .arg(key)
            .arg(owner)
            .arg("INTERVAL")
            .arg(600_000)
            .query(&mut m)
            .unwrap();
        tokens.push(token);
    }
    let aof_before = std::fs::read(incr_file(&master)).unwrap();
    for round in 1..=50i64 {
        for ((key, owner), &token) in owners.iter().zip(&tokens) {
            assert_eq!(beat(&mut m, key, owner, token).unwrap(), round);
        }
    }
    // Not beats: a refused beat, a renewal with new terms, a release.
    assert!(beat(&mut m, "d:short", b"someone-else", tokens[0]).is_err());
    let renewed = acquire(
        &mut m,
        "d:short",
        "owner-17-bytes-xx",
        &["INTERVAL", "700000"],
    );
    assert_eq!(renewed, Some(tokens[0]));
    assert_eq!(
        beat(&mut m, "d:short", b"owner-17-bytes-xx", tokens[0]).unwrap(),
        52
    );
    let released: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("d:binary")
        .arg(&binary_owner)
        .arg(tokens[2])
        .query(&mut m)
        .unwrap();
    assert_eq!(released, 1);
    assert!(beat(&mut m, "d:binary", &binary_owner, tokens[2]).is_err());

    let aof = std::fs::read(incr_file(&master)).unwrap();
    let written = &aof[aof_before.len()..];
    // 150 beats + the one after the renewal went as deltas.
    assert_eq!(
        deltas_in(written),
        151,
        "{}",
        String::from_utf8_lossy(written)
    );

    wait_in_sync(&mut m, &mut r);
    let keys = ["d:short", "d:long", "d:binary"];
    let on_master: Vec<String> = keys.iter().map(|k| digest_value(&mut m, k)).collect();
    let on_replica: Vec<String> = keys.iter().map(|k| digest_value(&mut r, k)).collect();
    assert_eq!(
        on_master, on_replica,
        "DEBUG DIGEST-VALUE, master vs replica"
    );
    assert_eq!(digest(&mut m), digest(&mut r));
    for key in keys {
        assert_eq!(
            info_int(&mut m, key, "beats"),
            info_int(&mut r, key, "beats"),
            "{key}"
        );
    }

    // The AOF, replayed, gives the identical records.
    drop(m);
    master.crash_and_restart();
    let mut m = master.conn();
    let replayed: Vec<String> = keys.iter().map(|k| digest_value(&mut m, k)).collect();
    assert_eq!(replayed, on_master, "DEBUG DIGEST-VALUE after AOF replay");
    assert_eq!(info_int(&mut m, "d:long", "beats"), 50);
}

/// A delta for a holder the record does not have (another token, a lease
/// that ended) or a malformed one changes nothing; the next good one applies.
#[test]
fn a_delta_for_another_holder_changes_nothing() {
    let options = Options::default().config("appendonly", "yes");
    let mut server = Server::with(options);
    let mut c = server.conn();
    let _: i64 = redis::cmd("INCR").arg("x").query(&mut c).unwrap();
    let incr = incr_file(&server);
    server.stop();
    // A beat far in the future (year 9999, inside the window records may
    // hold): held.
    let far = "253402300000000".to_string();
    let record: &[&str] = &[
        "HBLOCK.APPLY",
        "d:held",
        "1",
        "alice",
        "7",
        "60000",
        "3",
        "2",
        &far,
        &far,
        "1",
    ];
    // B, token, beats, zigzag(last beat - granted): 20 = +10 ms.
    let deltas = [
        "B\x08\x05\x14",     // token 8: not the holder
        "B\x07",             // cut short
        "B\x07\x05\x14\x00", // a byte too many
        "B\x07\x09\x14",     // the holder: beats 9, last beat +10 ms
        "B\x06\x0b\x14",     // token 6: not the holder
    ];
    let mut aof = Vec::new();
    crate::support::raw::encode(&["SELECT", "0"], &mut aof);
    crate::support::raw::encode(record, &mut aof);
    for delta in deltas {
        crate::support::raw::encode(&["HBLOCK.APPLY", "d:held", delta], &mut aof);
    }
    std::fs::write(&incr, aof).unwrap();
    server.relaunch();
    let mut c = server.conn();
    assert_eq!(info_int(&mut c, "d:held", "token"), 7, "{}", server.log());
    assert_eq!(info_int(&mut c, "d:held", "beats"), 9);
    // A client cannot send one.
    let refused: redis::RedisResult<()> = redis::cmd("HBLOCK.APPLY")
        .arg("d:held")
        .arg("B\x07\x0a\x14")
        .query(&mut c);
    assert!(refused.is_err());
    assert_eq!(info_int(&mut c, "d:held", "beats"), 9);
}
