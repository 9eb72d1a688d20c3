//! The mutual-exclusion checker: many contending clients on a few locks, some
//! dropping their connection mid-lease, some paused past their lease and then
//! writing with their old token. Every write to the "protected resource" goes
//! through a Lua script that checks the lock itself (held, same token, same
//! owner) and logs the attempt in server order with the server's time. The
//! history must show: one lease per token and tokens strictly increasing, no
//! write of an older lease after a newer one (leases do not overlap in server
//! time), every stale write rejected, every timed-out waiter answered nil
//! after its WAIT and counted. `HBLOCK_CHECK_SECS` sets the duration (CI: 20;
//! `make soak DURATION=...` for longer).

use crate::support::rng::Rng;
use crate::support::{counter, Server};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const LOCKS: usize = 3;
const WORKERS: usize = 8;
const INTERVAL_MS: u64 = 50;
const MISSES: u64 = 2; // 100 ms leases

/// The fenced write: KEYS = lock, log; ARGV = token, owner, kind. The write
/// (an RPUSH to the log) goes through HBLOCK.FENCED, which decides; a
/// refused one is logged with ok = 0. State and token are read for the log,
/// so the checker can verify every decision.
const FENCED_WRITE: &str = r"
local info = redis.call('HBLOCK.INFO', KEYS[1])
local state, current = 'missing', 0
if info then state = info[2]; current = info[6] end
local t = redis.call('TIME')
local function entry(ok) return table.concat({t[1], t[2], ARGV[1], current, state, ok, ARGV[3]}, ' ') end
local r = redis.pcall('HBLOCK.FENCED', KEYS[1], ARGV[2], ARGV[1], 'RPUSH', KEYS[2], entry(1))
if type(r) == 'table' and r.err then
  redis.call('RPUSH', KEYS[2], entry(0))
  return 0
end
return 1
";

struct Grant {
    lock: usize,
    wait_ms: u64,
    sent: Instant,
    replied: Instant,
    token: Option<i64>,
}

fn fenced(
    c: &mut redis::Connection,
    sha: &str,
    lock: usize,
    token: i64,
    owner: &str,
    kind: &str,
) -> i64 {
    redis::cmd("EVALSHA")
        .arg(sha)
        .arg(2)
        .arg(format!("mx:{lock}"))
        .arg(format!("mx:log:{lock}"))
        .arg(token)
        .arg(owner)
        .arg(kind)
        .query(c)
        .expect("fenced write")
}

fn acquire(c: &mut redis::Connection, key: &str, owner: &str, wait_ms: u64) -> Option<i64> {
    redis::cmd("HBLOCK.ACQUIRE")
        .arg(key)
        .arg(owner)
        .arg("INTERVAL")
        .arg(INTERVAL_MS)
        .arg("MISSES")
        .arg(MISSES)
        .arg("WAIT")
        .arg(wait_ms)
        .query(c)
        .expect("acquire")
}

/// One held lease, used the way `rng` picks: crash, pause past the lease, or work
/// and release. Returns true when the connection must be replaced (the crash).
fn use_lease(
    c: &mut redis::Connection,
    rng: &mut Rng,
    sha: &str,
    lock: usize,
    owner: &str,
    token: i64,
) -> bool {
    let key = format!("mx:{lock}");
    let beat = |c: &mut redis::Connection| {
        redis::cmd("HBLOCK.BEAT")
            .arg(&key)
            .arg(owner)
            .arg(token)
            .query::<i64>(c)
            .is_ok()
    };
    match rng.below(10) {
        0 => {
            // Crash: write once, then vanish without releasing.
            fenced(c, sha, lock, token, owner, "w");
            return true;
        }
        1 | 2 => {
            // Paused past the lease, then resumes and tries to write.
            fenced(c, sha, lock, token, owner, "w");
            std::thread::sleep(Duration::from_millis(
                INTERVAL_MS * MISSES * 2 + rng.below(100),
            ));
            fenced(c, sha, lock, token, owner, "stale");
            assert!(!beat(c), "a lease expired while paused must not beat again");
        }
        _ => {
            for _ in 0..=rng.below(4) {
                fenced(c, sha, lock, token, owner, "w");
                std::thread::sleep(Duration::from_millis(rng.below(INTERVAL_MS / 2)));
                if !beat(c) {
                    break;
                }
            }
            let _: i64 = redis::cmd("HBLOCK.RELEASE")
                .arg(&key)
                .arg(owner)
                .arg(token)
                .query(c)
                .expect("release");
        }
    }
    false
}

fn worker(server_url: String, sha: String, id: usize, until: Instant) -> Vec<Grant> {
    let connect = || {
        redis::Client::open(server_url.as_str())
            .and_then(|c| c.get_connection())
            .expect("connect")
    };
    let mut c = connect();
    let mut rng = Rng::new(0x9e37_79b9 + id as u64 * 7919);
    let mut grants = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let lock = rng.below(LOCKS as u64) as usize;
        let owner = format!("w{id}-{n}");
        let wait_ms = 10 + rng.below(190);
        let sent = Instant::now();
        let token = acquire(&mut c, &format!("mx:{lock}"), &owner, wait_ms);
        grants.push(Grant {
            lock,
            wait_ms,
            sent,
            replied: Instant::now(),
            token,
        });
        if let Some(token) = token {
            if use_lease(&mut c, &mut rng, &sha, lock, &owner, token) {
                c = connect();
            }
        }
    }
    grants
}

/// One line of a lock's write log: (server µs, token, current, state, ok, kind).
fn parse_log(line: &str) -> (u128, i64, i64, String, bool, String) {
    let f: Vec<&str> = line.split(' ').collect();
    let secs: u128 = f[0].parse().expect("secs");
    let micros: u128 = f[1].parse().expect("micros");
    (
        secs * 1_000_000 + micros,
        f[2].parse().expect("token"),
        f[3].parse().expect("current"),
        f[4].to_string(),
        f[5] == "1",
        f[6].to_string(),
    )
}

/// Checks 1 and 2: one lease per token, no token granted twice (to any
/// lock: the data set has one sequence); a grant answered before another
/// was asked has the lower token.
/// Returns the number of leases granted.
fn check_grants(grants: &[Grant]) -> usize {
    let mut per_lock: HashMap<usize, Vec<&Grant>> = HashMap::new();
    for g in grants.iter().filter(|g| g.token.is_some()) {
        per_lock.entry(g.lock).or_default().push(g);
    }
    let mut all: Vec<i64> = grants.iter().filter_map(|g| g.token).collect();
    let granted = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), granted, "every token granted exactly once");
    for (lock, gs) in &per_lock {
        let mut by_reply: Vec<&&Grant> = gs.iter().collect();
        by_reply.sort_by_key(|g| g.replied);
        for (i, a) in by_reply.iter().enumerate() {
            for b in by_reply.iter().skip(i + 1).filter(|b| b.sent > a.replied) {
                assert!(
                    a.token < b.token,
                    "lock {lock}: token {:?} granted after {:?}",
                    b.token,
                    a.token
                );
            }
        }
    }
    per_lock.values().map(Vec::len).sum()
}

#[derive(Default)]
struct Writes {
    total: usize,
    accepted: usize,
    stale: usize,
}

/// Check 3, the write log of one lock in server order: time and token never
/// go back, accepted writes come from the current holder and never from an
/// older lease, stale writes are all rejected.
fn check_write_log(c: &mut redis::Connection, lock: usize, writes: &mut Writes) {
    let lines: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("mx:log:{lock}"))
        .arg(0)
        .arg(-1)
        .query(c)
        .expect("LRANGE");
    let (mut last_time, mut last_current, mut newest_writer) = (0, 0, 0);
    for line in &lines {
        let (time, token, current, state, ok, kind) = parse_log(line);
        writes.total += 1;
        assert!(time >= last_time, "lock {lock}: log out of server order");
        assert!(
            current >= last_current,
            "lock {lock}: the token went back from {last_current} to {current}"
        );
        (last_time, last_current) = (time, current);
        if ok {
            writes.accepted += 1;
            assert!(
                state == "held" && token == current,
                "lock {lock}: accepted {line}"
            );
            assert!(
                token >= newest_writer,
                "lock {lock}: lease {token} wrote after lease {newest_writer}: overlap"
            );
            newest_writer = token;
        }
        if kind == "stale" {
            writes.stale += 1;
            assert!(!ok, "lock {lock}: a stale write was accepted: {line}");
        }
    }
}

/// Check 4: timed-out waiters got nil after their WAIT, and were counted.
fn check_timeouts(c: &mut redis::Connection, grants: &[Grant]) -> usize {
    let timeouts: Vec<&Grant> = grants.iter().filter(|g| g.token.is_none()).collect();
    for g in &timeouts {
        let waited = g.replied.duration_since(g.sent);
        // 2 ms: the deadline and the timer's period are both computed from
        // Redis's millisecond clock, each truncated (at most 1 ms early each).
        assert!(
            waited + Duration::from_millis(2) >= Duration::from_millis(g.wait_ms),
            "nil after {waited:?} of WAIT {}",
            g.wait_ms
        );
    }
    assert_eq!(
        counter(c, "wait_timeouts"),
        timeouts.len() as u64,
        "every nil is a counted WAIT timeout"
    );
    assert_eq!(counter(c, "waiting"), 0);
    timeouts.len()
}

#[test]
fn mutual_exclusion_holds_under_contention_crashes_and_pauses() {
    let secs: u64 = std::env::var("HBLOCK_CHECK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let server = Server::start();
    let mut c = server.conn();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(FENCED_WRITE)
        .query(&mut c)
        .expect("SCRIPT LOAD");
    let until = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (url, sha) = (server.url(), sha.clone());
            std::thread::spawn(move || worker(url, sha, id, until))
        })
        .collect();
    let grants: Vec<Grant> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("worker"))
        .collect();

    let granted = check_grants(&grants);
    let mut writes = Writes::default();
    for lock in 0..LOCKS {
        check_write_log(&mut c, lock, &mut writes);
    }
    let timeouts = check_timeouts(&mut c, &grants);
    eprintln!(
        "exclusion check, {secs} s: {granted} leases, {timeouts} timeouts, {} writes ({} accepted), {} stale writes, all rejected",
        writes.total, writes.accepted, writes.stale
    );
    assert!(
        granted > 20 && writes.stale > 0 && writes.accepted > 0,
        "the run exercised too little"
    );
}
