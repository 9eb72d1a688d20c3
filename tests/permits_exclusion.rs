//! The mutual-exclusion checker generalised to permits: 16 clients on one
//! LIMIT 3 lock while an operator pauses the server (`CLIENT PAUSE` WRITE and
//! ALL) and kills holders' connections (`CLIENT KILL` of bound holders), and
//! holders crash (close without releasing) or stall past their lease.
//!
//! Every write to the "protected resource" goes through a Lua script that logs,
//! in server order, the holder's fenced write (`HBLOCK.FENCED ... RPUSH`) with
//! what the server said at that moment: `holders` from INFO, how many
//! `HBLOCK.HOLDERS` lists and whether it lists the writer's token. A refused
//! write is logged with its error. The log and the replies must show:
//! 1. never more than 3 holders: the spans of the leases' accepted writes (first
//!    to last, in log order) never overlap more than 3 deep, and the server
//!    never counted or listed more than 3; every accepted write's token was
//!    listed by HOLDERS;
//! 2. fenced: a write after the lease ended (stalled past it, or from a new
//!    connection after a bound holder's was killed) is refused with NOTHELD, and
//!    once a lease's write was refused, no later write of it is accepted;
//! 3. tokens never repeat, and a grant answered before another ACQUIRE was sent
//!    has the lower token;
//! 4. no permit lost: a sampler reads INFO's `holders` and `waiters` every few
//!    ms; outside pause windows (+ `AFTER_PAUSE`), no stretch of samples with
//!    waiters present and fewer than 3 holders lasts longer than `STARVED_MAX`
//!    (and at least `STARVED_SAMPLES` samples, so a descheduled sampler cannot
//!    fail it); a permit leaked for good would starve the queue for the rest of
//!    the run. At the end 3 fresh owners are granted at once;
//! 5. every nil came after its WAIT and was counted.
//!
//! `HBLOCK_PERMITS_SECS` (else `HBLOCK_CHECK_SECS`, as `make soak` sets it)
//! sets the duration, 30 s by default.

use crate::support::rng::Rng;
use crate::support::{counter, info, Server};
use redis::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: i64 = 3;
const WORKERS: usize = 16;
const INTERVAL_MS: u64 = 50;
const MISSES: u64 = 2; // 100 ms leases
const LOCK: &str = "px:lock";
const LOG: &str = "px:log";
/// Starvation that outlasts this (outside pauses) is a lost permit: leases are
/// 100 ms, a freed permit is granted in well under a millisecond.
const STARVED_MAX: Duration = Duration::from_millis(500);
const STARVED_SAMPLES: usize = 20;
/// Grants and expiries that fell due in a pause happen when it ends.
const AFTER_PAUSE: Duration = Duration::from_millis(200);

/// The fenced write. KEYS = lock, log; ARGV = token, owner, kind. Logs
/// `secs micros token ok holders listed mine kind error`, where `holders` is
/// INFO's count, `listed` the length of HOLDERS and `mine` whether HOLDERS
/// lists this token, all read just before the write in the same script.
const FENCED_WRITE: &str = r"
local holders, listed, mine = -1, 0, 0
local info = redis.call('HBLOCK.INFO', KEYS[1])
if info then
  for i = 1, #info - 1, 2 do
    if info[i] == 'holders' then holders = info[i + 1] end
  end
end
local list = redis.call('HBLOCK.HOLDERS', KEYS[1])
if type(list) == 'table' then
  for _, h in ipairs(list) do
    local tok = h[2]
    for i = 1, #h - 1 do
      if h[i] == 'token' then tok = h[i + 1] end
    end
    listed = listed + 1
    if tonumber(tok) == tonumber(ARGV[1]) then mine = 1 end
  end
end
local t = redis.call('TIME')
local function entry(ok, err)
  return table.concat({t[1], t[2], ARGV[1], ok, holders, listed, mine, ARGV[3], err}, ' ')
end
local r = redis.pcall('HBLOCK.FENCED', KEYS[1], ARGV[2], ARGV[1], 'RPUSH', KEYS[2], entry(1, '-'))
if type(r) == 'table' and r.err then
  local code = string.match(r.err, '^(%S+)') or '?'
  redis.call('RPUSH', KEYS[2], entry(0, code))
  return code
end
return 'OK'
";

struct Grant {
    wait_ms: u64,
    sent: Instant,
    replied: Instant,
    token: Option<i64>,
}

/// What the operator and the workers share.
struct Shared {
    url: String,
    sha: String,
    until: Instant,
    /// Worker -> CLIENT ID of its connection while it holds a BIND 0 lease.
    /// The operator kills under this lock, so a worker that has taken itself
    /// out is never killed afterwards.
    killable: Mutex<HashMap<usize, i64>>,
    /// [start, end + AFTER_PAUSE] of every pause.
    pauses: Mutex<Vec<(Instant, Instant)>>,
    kills: Mutex<usize>,
    stop_sampler: AtomicBool,
}

/// The connection is gone: the operator killed it, or the worker crashes on
/// purpose (and the caller drops it).
struct Dropped;

fn dropped(err: &redis::RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal()
}

fn connect(url: &str) -> redis::Connection {
    let c = redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    c
}

/// A fenced write: "OK", or the code of the error that refused it.
fn fenced(
    c: &mut redis::Connection,
    shared: &Shared,
    token: i64,
    owner: &str,
    kind: &str,
) -> Result<String, Dropped> {
    let reply = redis::cmd("EVALSHA")
        .arg(&shared.sha)
        .arg(2)
        .arg(LOCK)
        .arg(LOG)
        .arg(token)
        .arg(owner)
        .arg(kind)
        .query::<String>(c);
    match reply {
        Ok(code) => Ok(code),
        Err(e) if dropped(&e) => Err(Dropped),
        Err(e) => panic!("fenced write {kind} of {owner}/{token}: {e}"),
    }
}

/// BEAT: Ok(true) beaten, Ok(false) NOTHELD.
fn beat(c: &mut redis::Connection, owner: &str, token: i64) -> Result<bool, Dropped> {
    match redis::cmd("HBLOCK.BEAT")
        .arg(LOCK)
        .arg(owner)
        .arg(token)
        .query::<i64>(c)
    {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("NOTHELD") => Ok(false),
        Err(e) if dropped(&e) => Err(Dropped),
        Err(e) => panic!("BEAT {owner}/{token}: {e}"),
    }
}

/// ACQUIRE ... LIMIT 3 WAIT `wait_ms`; `bind`: None, or BIND with this grace
/// in ms. Ok(None): the WAIT ran out.
fn acquire(
    c: &mut redis::Connection,
    owner: &str,
    wait_ms: u64,
    bind: Option<u64>,
) -> Result<Option<i64>, Dropped> {
    let mut cmd = redis::cmd("HBLOCK.ACQUIRE");
    cmd.arg(LOCK)
        .arg(owner)
        .arg("INTERVAL")
        .arg(INTERVAL_MS)
        .arg("MISSES")
        .arg(MISSES)
        .arg("WAIT")
        .arg(wait_ms)
        .arg("LIMIT")
        .arg(LIMIT);
    if let Some(grace) = bind {
        cmd.arg("BIND").arg(grace);
    }
    match cmd.query::<Option<i64>>(c) {
        Ok(token) => Ok(token),
        Err(e) if dropped(&e) => Err(Dropped),
        Err(e) => panic!("ACQUIRE {owner}: {e}"),
    }
}

fn refused(code: &str, what: &str) {
    assert_eq!(code, "NOTHELD", "{what}: expected NOTHELD, got {code}");
}

/// One held lease, used as `rng` picks. Err(Dropped): the connection died.
fn use_lease(
    c: &mut redis::Connection,
    rng: &mut Rng,
    shared: &Shared,
    owner: &str,
    token: i64,
) -> Result<(), Dropped> {
    fenced(c, shared, token, owner, "start")?;
    match rng.below(10) {
        0 => Err(Dropped), // crash: vanish without releasing
        1 | 2 => {
            // Stalled past the lease, then resumes and tries to write.
            std::thread::sleep(Duration::from_millis(
                INTERVAL_MS * MISSES * 2 + rng.below(100),
            ));
            let code = fenced(c, shared, token, owner, "stale")?;
            refused(&code, "a write after the lease lapsed");
            assert!(!beat(c, owner, token)?, "a lapsed lease beat again");
            Ok(())
        }
        _ => {
            for _ in 0..=rng.below(4) {
                std::thread::sleep(Duration::from_millis(rng.below(INTERVAL_MS / 2)));
                if !beat(c, owner, token)? {
                    break; // lapsed (a pause outlasted it): nothing to release
                }
                fenced(c, shared, token, owner, "w")?;
            }
            fenced(c, shared, token, owner, "end")?;
            match redis::cmd("HBLOCK.RELEASE")
                .arg(LOCK)
                .arg(owner)
                .arg(token)
                .query::<i64>(c)
            {
                Ok(_) => Ok(()),
                Err(e) if dropped(&e) => Err(Dropped),
                Err(e) => panic!("RELEASE {owner}/{token}: {e}"),
            }
        }
    }
}

/// A lease bound with grace 0 whose connection closed: the timer releases it
/// on its next pass (later if a pause defers it). Once CHECK says it is gone,
/// a fenced write of it from this new connection is refused.
fn after_close(c: &mut redis::Connection, shared: &Shared, owner: &str, token: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let check = redis::cmd("HBLOCK.CHECK")
            .arg(LOCK)
            .arg(owner)
            .arg(token)
            .query::<String>(c);
        match check {
            Ok(_) => assert!(
                Instant::now() < deadline,
                "{owner}/{token}: bound lease still held 10 s after its connection closed"
            ),
            Err(e) if e.code() == Some("NOTHELD") => break,
            Err(e) => panic!("CHECK {owner}/{token}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let code = fenced(c, shared, token, owner, "killed")
        .unwrap_or_else(|_| panic!("a fresh connection dropped"));
    refused(&code, "a write after the bound connection closed");
}

fn worker(shared: Arc<Shared>, id: usize) -> Vec<Grant> {
    let mut c = connect(&shared.url);
    let mut rng = Rng::new(0x5eed_0028 + id as u64 * 7919);
    let mut grants = Vec::new();
    let mut n = 0;
    while Instant::now() < shared.until {
        n += 1;
        let owner = format!("w{id}-{n}");
        let wait_ms = 10 + rng.below(290);
        let bind = match rng.below(4) {
            0 | 1 => Some(0),
            2 => Some(20),
            _ => None,
        };
        let sent = Instant::now();
        let Ok(token) = acquire(&mut c, &owner, wait_ms, bind) else {
            c = connect(&shared.url);
            continue;
        };
        grants.push(Grant {
            wait_ms,
            sent,
            replied: Instant::now(),
            token,
        });
        let Some(token) = token else { continue };
        if bind == Some(0) {
            if let Ok(id_reply) = redis::cmd("CLIENT").arg("ID").query::<i64>(&mut c) {
                shared
                    .killable
                    .lock()
                    .expect("killable")
                    .insert(id, id_reply);
            }
        }
        let used = use_lease(&mut c, &mut rng, &shared, &owner, token);
        shared.killable.lock().expect("killable").remove(&id);
        if used.is_err() {
            // Crashed or killed: a new connection.
            c = connect(&shared.url);
            if bind == Some(0) {
                after_close(&mut c, &shared, &owner, token);
            }
        }
    }
    grants
}

/// Pauses the server and kills bound holders' connections until the end.
fn operator(shared: Arc<Shared>) {
    let mut c = connect(&shared.url);
    let mut rng = Rng::new(0x0b5e_55ed);
    while Instant::now() + Duration::from_secs(1) < shared.until {
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        if rng.below(3) == 0 {
            let ms = 50 + rng.below(200);
            let mode = if rng.below(3) == 0 { "ALL" } else { "WRITE" };
            let start = Instant::now();
            let () = redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(ms)
                .arg(mode)
                .query(&mut c)
                .expect("CLIENT PAUSE");
            let end = start + Duration::from_millis(ms) + AFTER_PAUSE;
            shared.pauses.lock().expect("pauses").push((start, end));
            std::thread::sleep(Duration::from_millis(ms));
        } else {
            let killable = shared.killable.lock().expect("killable");
            let ids: Vec<i64> = killable.values().copied().collect();
            if ids.is_empty() {
                continue;
            }
            let victim = ids[rng.below(ids.len() as u64) as usize];
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(victim)
                .query(&mut c)
                .expect("CLIENT KILL");
            *shared.kills.lock().expect("kills") += killed as usize;
        }
    }
}

/// (when, holders, waiters), every few ms; also checks INFO's limit.
fn sampler(shared: Arc<Shared>) -> Vec<(Instant, i64, i64)> {
    let mut c = connect(&shared.url);
    let mut samples = Vec::new();
    while !shared.stop_sampler.load(Ordering::SeqCst) {
        if let Some(fields) = info(&mut c, LOCK) {
            let field = |name: &str| match fields.iter().find(|(n, _)| n == name) {
                Some((_, Value::Int(v))) => *v,
                other => panic!("INFO {name}: {other:?}"),
            };
            assert_eq!(field("limit"), LIMIT, "INFO limit");
            let holders = field("holders");
            assert!(holders <= LIMIT, "INFO counted {holders} holders");
            samples.push((Instant::now(), holders, field("waiters")));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    samples
}

/// Check 4: the longest starvation outside pauses, with its sample count.
fn check_no_permit_lost(
    samples: &[(Instant, i64, i64)],
    pauses: &[(Instant, Instant)],
) -> (Duration, usize) {
    let paused = |t: Instant| pauses.iter().any(|&(a, b)| t >= a && t <= b);
    let (mut longest, mut longest_n) = (Duration::ZERO, 0);
    let mut run: Option<(Instant, usize)> = None;
    for &(t, holders, waiters) in samples {
        let starved = waiters > 0 && holders < LIMIT && !paused(t);
        run = match (run, starved) {
            (None, true) => Some((t, 1)),
            (Some((start, n)), true) => Some((start, n + 1)),
            (Some((start, n)), false) => {
                let span = t - start;
                assert!(
                    span <= STARVED_MAX || n < STARVED_SAMPLES,
                    "a permit was lost: waiters and < {LIMIT} holders for {span:?} ({n} samples)"
                );
                if span > longest {
                    (longest, longest_n) = (span, n);
                }
                None
            }
            (None, false) => None,
        };
    }
    (longest, longest_n)
}

/// Check 3: tokens never repeat and grow with time.
fn check_grants(grants: &[Grant]) -> usize {
    let mut by_reply: Vec<&Grant> = grants.iter().filter(|g| g.token.is_some()).collect();
    let mut tokens: Vec<i64> = by_reply.iter().filter_map(|g| g.token).collect();
    let granted = tokens.len();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), granted, "every token granted exactly once");
    by_reply.sort_by_key(|g| g.replied);
    // Each grant against the grants answered before it was sent: those have
    // lower tokens. The running maximum makes it one pass.
    let mut answered = 0;
    let mut highest_answered = 0;
    let mut by_sent: Vec<&Grant> = by_reply.clone();
    by_sent.sort_by_key(|g| g.sent);
    for g in by_sent {
        while answered < by_reply.len() && by_reply[answered].replied < g.sent {
            highest_answered = highest_answered.max(by_reply[answered].token.unwrap_or(0));
            answered += 1;
        }
        let token = g.token.unwrap_or(0);
        assert!(
            token > highest_answered,
            "token {token} granted after {highest_answered} was answered"
        );
    }
    granted
}

#[derive(Default, Debug)]
struct Writes {
    total: usize,
    accepted: usize,
    refused: usize,
    stale: usize,
    killed: usize,
    deepest: usize,
}

/// One log line: (token, ok, holders, listed, mine, kind, error).
fn parse_log(line: &str) -> (i64, bool, i64, i64, bool, String, String) {
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 9, "log line {line:?}");
    let int = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{line:?}"));
    (
        int(f[2]),
        f[3] == "1",
        int(f[4]),
        int(f[5]),
        f[6] == "1",
        f[7].to_string(),
        f[8].to_string(),
    )
}

/// Checks 1 and 2 on the write log, in server order.
fn check_write_log(c: &mut redis::Connection, granted: &HashSet<i64>) -> Writes {
    let lines: Vec<String> = redis::cmd("LRANGE")
        .arg(LOG)
        .arg(0)
        .arg(-1)
        .query(c)
        .expect("LRANGE");
    let mut w = Writes::default();
    // token -> (first accepted, last accepted) index; tokens refused once.
    let mut spans: HashMap<i64, (usize, usize)> = HashMap::new();
    let mut ended: HashSet<i64> = HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let (token, ok, holders, listed, mine, kind, error) = parse_log(line);
        w.total += 1;
        assert!(granted.contains(&token), "{line}: token never granted");
        assert!(
            holders <= LIMIT && listed <= LIMIT,
            "the server counted more than {LIMIT} holders: {line}"
        );
        if ok {
            w.accepted += 1;
            assert!(mine, "an accepted write's token not in HOLDERS: {line}");
            assert!(
                !ended.contains(&token),
                "lease {token} wrote after one of its writes was refused: {line}"
            );
            spans.entry(token).or_insert((i, i)).1 = i;
        } else {
            w.refused += 1;
            assert_eq!(error, "NOTHELD", "refused for another reason: {line}");
            ended.insert(token);
        }
        match kind.as_str() {
            "stale" => w.stale += 1,
            "killed" => w.killed += 1,
            _ => {}
        }
        if kind == "stale" || kind == "killed" {
            assert!(!ok, "a write after the lease ended was accepted: {line}");
        }
    }
    // Sweep: +1 at a span's first write, -1 after its last.
    let mut events: Vec<(usize, i32)> = spans
        .values()
        .flat_map(|&(a, b)| [(2 * a, 1), (2 * b + 1, -1)])
        .collect();
    events.sort_unstable();
    let mut depth = 0i32;
    for (_, d) in events {
        depth += d;
        w.deepest = w.deepest.max(depth as usize);
    }
    assert!(
        w.deepest <= LIMIT as usize,
        "{} leases wrote concurrently (limit {LIMIT})",
        w.deepest
    );
    w
}

/// Check 5: nils came after their WAIT and were counted.
fn check_timeouts(c: &mut redis::Connection, grants: &[Grant]) -> usize {
    let timeouts: Vec<&Grant> = grants.iter().filter(|g| g.token.is_none()).collect();
    for g in &timeouts {
        let waited = g.replied.duration_since(g.sent);
        assert!(
            waited + Duration::from_millis(2) >= Duration::from_millis(g.wait_ms),
            "nil after {waited:?} of WAIT {}",
            g.wait_ms
        );
    }
    assert_eq!(counter(c, "wait_timeouts"), timeouts.len() as u64);
    timeouts.len()
}

fn seconds() -> u64 {
    ["HBLOCK_PERMITS_SECS", "HBLOCK_CHECK_SECS"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
        .unwrap_or(30)
}

#[test]
fn at_most_limit_holders_under_pauses_kills_crashes_and_stalls() {
    let secs = seconds();
    let server = Server::start();
    let mut c = server.conn();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(FENCED_WRITE)
        .query(&mut c)
        .expect("SCRIPT LOAD");
    let shared = Arc::new(Shared {
        url: server.url(),
        sha,
        until: Instant::now() + Duration::from_secs(secs),
        killable: Mutex::new(HashMap::new()),
        pauses: Mutex::new(Vec::new()),
        kills: Mutex::new(0),
        stop_sampler: AtomicBool::new(false),
    });
    let sampling = {
        let shared = shared.clone();
        std::thread::spawn(move || sampler(shared))
    };
    let operating = {
        let shared = shared.clone();
        std::thread::spawn(move || operator(shared))
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let shared = shared.clone();
            std::thread::spawn(move || worker(shared, id))
        })
        .collect();
    let grants: Vec<Grant> = workers
        .into_iter()
        .flat_map(|h| h.join().expect("worker"))
        .collect();
    operating.join().expect("operator");
    shared.stop_sampler.store(true, Ordering::SeqCst);
    let samples = sampling.join().expect("sampler");

    let granted = check_grants(&grants);
    let tokens: HashSet<i64> = grants.iter().filter_map(|g| g.token).collect();
    let writes = check_write_log(&mut c, &tokens);
    let timeouts = check_timeouts(&mut c, &grants);
    let pauses = shared.pauses.lock().expect("pauses").clone();
    let (starved, starved_n) = check_no_permit_lost(&samples, &pauses);
    let kills = *shared.kills.lock().expect("kills");

    // No permit leaked: LIMIT fresh owners are granted at once.
    for i in 0..LIMIT {
        let token: Option<i64> = redis::cmd("HBLOCK.ACQUIRE")
            .arg(LOCK)
            .arg(format!("final-{i}"))
            .arg("INTERVAL")
            .arg(60_000)
            .arg("WAIT")
            .arg(2_000)
            .arg("LIMIT")
            .arg(LIMIT)
            .query(&mut c)
            .expect("final ACQUIRE");
        assert!(token.is_some(), "permit {i} of {LIMIT} never came back");
    }

    eprintln!(
        "permits exclusion check, LIMIT {LIMIT}, {WORKERS} clients, {secs} s: {granted} leases, \
         {timeouts} timeouts, {} pauses, {kills} kills; {} writes ({} accepted, {} refused, \
         {} stale, {} after a bound connection closed, all refused); at most {} leases wrote at once; \
         {} INFO samples, longest starvation outside pauses {starved:?} ({starved_n} samples)",
        pauses.len(),
        writes.total,
        writes.accepted,
        writes.refused,
        writes.stale,
        writes.killed,
        writes.deepest,
        samples.len(),
    );
    assert!(
        granted > 50 && writes.stale > 0 && writes.accepted > 0 && !pauses.is_empty(),
        "the run exercised too little"
    );
    assert!(
        writes.deepest == LIMIT as usize,
        "never {LIMIT} leases at once: the limit was not exercised"
    );
    if secs >= 10 {
        assert!(kills > 0 && writes.killed > 0, "no bound holder was killed");
    }
}
