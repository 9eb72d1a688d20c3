//! Records whose times lie outside 0..=TIME_MAX_MS (year 9999) are refused
//! when they arrive (the permits review): a RESTOREd lease granted at
//! i64::MIN used to load, then write a history entry no save could load
//! again (DEBUG RELOAD lost the data set; replicas refused its APPLY).

use crate::support::dump::{forge, forge_permits, Holder, Record};
use crate::support::{call, config_set, digest, Server};
/// 9999-12-31T23:59:59.999Z, as hblock_core::limits::TIME_MAX_MS.
const TIME_MAX_MS: i64 = 253_402_300_799_999;
use redis::Connection;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn restore(c: &mut Connection, key: &str, payload: &[u8]) -> Result<(), String> {
    redis::cmd("RESTORE")
        .arg(key)
        .arg(0)
        .arg(payload)
        .arg("REPLACE")
        .query::<()>(c)
        .map_err(|e| format!("{e:?}"))
}

/// (granted, last_beat) pairs a record may not hold, and one it may.
fn forged_times(now: i64) -> [(i64, i64); 5] {
    [
        (i64::MIN, now),
        (-1, now),
        (now, TIME_MAX_MS + 1),
        (now, i64::MAX),
        (i64::MAX, now),
    ]
}

fn holder(owner: &[u8], token: u64, (granted, last_beat): (i64, i64)) -> Holder {
    Holder {
        owner: owner.to_vec(),
        token,
        interval: 100_000,
        misses: 3,
        beats: 0,
        granted,
        last_beat,
    }
}

#[test]
fn restore_refuses_times_no_save_could_load_again() {
    let server = Server::start();
    let mut c = server.conn();
    config_set(&mut c, "hblock.history", "10");
    let _: Option<i64> = call(&mut c, &[b"HBLOCK.ACQUIRE", b"template", b"t"]).unwrap();
    let real: Vec<u8> = redis::cmd("DUMP").arg("template").query(&mut c).unwrap();
    let now = now_ms();
    let mut lock = Record::held(b"", 1000, now);
    lock.phase = 0; // free: its holders are the permits'
                    // The same forging with sane times loads: the payloads are well formed.
    let sane = forge_permits(&real, &lock, 4, &[holder(b"a", 1000, (now, now))]);
    restore(&mut c, "ok:permits", &sane).unwrap();
    restore(
        &mut c,
        "ok:plain",
        &forge(&real, &Record::held(b"a", 2000, now)),
    )
    .unwrap();
    let before = digest(&mut c);
    for times in forged_times(now) {
        let mut plain = Record::held(b"a", 1000, now);
        (plain.granted, plain.last_beat) = times;
        let permits = forge_permits(&real, &lock, 4, &[holder(b"a", 1000, times)]);
        for (kind, payload) in [("plain", forge(&real, &plain)), ("permits", permits)] {
            let err = restore(&mut c, "forged", &payload).unwrap_err();
            assert!(err.contains("Bad data format"), "{kind} {times:?}: {err}");
        }
    }
    assert_eq!(digest(&mut c), before, "nothing changed");
    // What loaded saves and loads again, its lease ends recorded.
    for (key, token) in [("ok:permits", "1000"), ("ok:plain", "2000")] {
        let release = [b"HBLOCK.RELEASE", key.as_bytes(), b"a", token.as_bytes()];
        let released: i64 = call(&mut c, &release).unwrap();
        assert_eq!(released, 1, "{key}");
    }
    let saved = digest(&mut c);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(digest(&mut c), saved);
}
