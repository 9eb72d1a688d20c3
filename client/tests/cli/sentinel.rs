//! Redis Sentinel (issue #24): `hblock run --redis redis+sentinel://...` and
//! the Python package on a `Sentinel(...).master_for(...)` client, through a
//! `kill -9` of the master and then a planned `SENTINEL FAILOVER`. A master,
//! a replica and three Sentinels on loopback (support/src/sentinel.rs);
//! `SERVER_BIN` picks Redis or Valkey (the Sentinels are the same binary).

use super::*;
use support::sentinel::{SentinelSet, DOWN_AFTER_MS, MASTER_NAME};
use support::Options;

/// The child of `hblock run`: its token and start time, then a tick every
/// 20 ms (ns since the epoch, one a line).
const TICKS: &str = "echo \"$HBLOCK_TOKEN $(date +%s%N)\" > \"$DIR/$NAME.start.tmp\"; mv \"$DIR/$NAME.start.tmp\" \"$DIR/$NAME.start\"; while :; do date +%s%N >> \"$DIR/$NAME.ticks\"; sleep 0.02; done";

/// A Python `hblock.Lease` on a Sentinel client: the same files as TICKS,
/// ticking while the lease is not lost (then it exits 4).
const PY_LEASE: &str = r#"
import logging, os, sys, time
from redis.sentinel import Sentinel
import hblock
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
ports, key, name, where, interval, misses = sys.argv[1:7]
sentinel = Sentinel([("127.0.0.1", int(p)) for p in ports.split(",")], socket_timeout=1.0,
                    sentinel_kwargs={"socket_timeout": 0.5})
client = sentinel.master_for("hbm", socket_timeout=2.0)
lease = hblock.Lease(client, key, owner=name, interval_ms=int(interval), misses=int(misses))
token = lease.acquire()
with open(os.path.join(where, name + ".start.tmp"), "w") as f:
    f.write(f"{token} {time.time_ns()}\n")
os.rename(os.path.join(where, name + ".start.tmp"), os.path.join(where, name + ".start"))
with open(os.path.join(where, name + ".ticks"), "a") as ticks:
    while not lease.lost:
        ticks.write(f"{time.time_ns()}\n")
        ticks.flush()
        time.sleep(0.02)
logging.warning("stopped: %s", lease.lost_reason)
sys.exit(4)
"#;

/// `hblock.watch` on a Sentinel client: one line per change, the token.
const PY_WATCH: &str = r#"
import sys
from redis.sentinel import Sentinel
import hblock
ports, key = sys.argv[1:3]
sentinel = Sentinel([("127.0.0.1", int(p)) for p in ports.split(",")], socket_timeout=1.0,
                    sentinel_kwargs={"socket_timeout": 0.5})
for info in hblock.watch(sentinel.master_for("hbm", socket_timeout=5.0), key):
    print(info and info.get("token"), flush=True)
"#;

/// A background process whose stdout goes to a file; killed on drop.
struct Watcher {
    child: Child,
    out: PathBuf,
}

impl Watcher {
    fn start(mut cmd: Command, out: PathBuf) -> Watcher {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start a watcher");
        Watcher { child, out }
    }

    /// Whether a line of its output shows `token` within `within`.
    fn shows(&self, token: i64, within: Duration) -> bool {
        let token = token.to_string();
        eventually(within, || {
            let out = std::fs::read_to_string(&self.out).unwrap_or_default();
            out.lines()
                .any(|l| l.trim() == token || l.contains(&format!("\"token\":{token},")))
                .then_some(())
        })
        .is_some()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python process running PY_LEASE, killed on drop; its stderr in a file.
struct PyLease {
    child: Child,
    log: PathBuf,
}

impl PyLease {
    fn start(set: &SentinelSet, dir: &Path, key: &str, name: &str, terms: (u64, u32)) -> PyLease {
        let ports: Vec<String> = set.sentinels.iter().map(|s| s.port.to_string()).collect();
        let log = dir.join(format!("{name}.stderr"));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/src");
        let child = Command::new(python())
            .args(["-c", PY_LEASE, &ports.join(","), key, name])
            .arg(dir)
            .args([terms.0.to_string(), terms.1.to_string()])
            // This checkout's package, not an installed one.
            .env("PYTHONPATH", src)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start python");
        PyLease { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PyLease {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- python {} ---\n{}", self.log.display(), self.log());
        }
    }
}

/// `hblock run KEY` through Sentinel, as `name` (`--owner name`).
fn run_on(url: &str, dir: &Path, key: &str, name: &str, terms: &[&str]) -> Supervisor {
    let log = dir.join(format!("{name}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .env("HBLOCK_REDIS_URL", url)
        .args(["run", key, "--owner", name])
        .args(terms)
        .args(["--", "sh", "-c", TICKS])
        .env("DIR", dir)
        .env("NAME", name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start hblock run");
    Supervisor { child, log }
}

/// (token, start ns) of a child, once it has started.
fn started(dir: &Path, name: &str, within: Duration) -> Option<(i64, u128)> {
    eventually(within, || {
        let text = std::fs::read_to_string(dir.join(format!("{name}.start"))).ok()?;
        let mut it = text.split_whitespace();
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    })
}

fn ticks(dir: &Path, name: &str) -> Vec<u128> {
    std::fs::read_to_string(dir.join(format!("{name}.ticks")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The largest gap between two ticks at or after `from_ns`, in ms.
fn longest_gap_ms(ticks: &[u128], from_ns: u128) -> f64 {
    let after: Vec<u128> = ticks.iter().copied().filter(|t| *t >= from_ns).collect();
    after
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .fold(0.0, f64::max)
}

/// `before`'s child never ticked once `after`'s had started.
fn one_at_a_time(dir: &Path, before: &str, after: &str) {
    let (_, start) = started(dir, after, Duration::ZERO).expect("started");
    let late: Vec<u128> = ticks(dir, before)
        .into_iter()
        .filter(|t| *t >= start)
        .collect();
    assert!(
        late.is_empty(),
        "{before}'s child still ran {} times after {after}'s had started",
        late.len()
    );
}

fn hblock_info(url: &str, key: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .env("HBLOCK_REDIS_URL", url)
        .args(["info", key, "--json"])
        .output()
        .expect("hblock info");
    stdout(&out)
}

fn waiters_on(set: &SentinelSet, node: usize, key: &str, n: i64) -> bool {
    waiters_within(set, node, key, n, Duration::from_secs(15))
}

/// `n` clients wait for `key` on `node` within `within`.
fn waiters_within(set: &SentinelSet, node: usize, key: &str, n: i64, within: Duration) -> bool {
    let mut c = set.nodes[node].conn();
    eventually(within, || {
        let info = support::info(&mut c, key)?;
        info.into_iter()
            .any(|(name, v)| name == "waiters" && v == redis::Value::Int(n))
            .then_some(())
    })
    .is_some()
}

/// k (`hblock run`) and pk (Python) were never stopped, and their children
/// ticked after `since_ns` (when a failover began) and still tick.
fn survived(dir: &Path, k_log: &str, pk_log: &str, since_ns: u128) {
    for word in ["lost", "stopping", "killing", "watchdog"] {
        assert!(!k_log.contains(word), "k: {word}\n{k_log}");
    }
    assert!(
        !pk_log.contains("lost") && !pk_log.contains("stopped"),
        "{pk_log}"
    );
    for name in ["k", "pk"] {
        let last_seen = ticks(dir, name).last().copied().unwrap_or(0);
        let ticking = eventually(Duration::from_secs(5), || {
            let last = ticks(dir, name).last().copied()?;
            (last > since_ns && last > last_seen).then_some(())
        });
        assert!(ticking.is_some(), "{name}'s work goes on");
    }
}

/// `key` is held on `node` and its beat count there grows.
fn beats_on(set: &SentinelSet, node: usize, key: &str) {
    let mut c = set.nodes[node].conn();
    let first = support::info_int(&mut c, key, "beats");
    let grew = eventually(Duration::from_secs(5), || {
        (support::state(&mut c, key) == "held" && support::info_int(&mut c, key, "beats") > first)
            .then_some(())
    });
    assert!(grew.is_some(), "{key}: no beat reached the new master");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn run_and_python_leases_follow_sentinel_failovers() {
    let began = Instant::now();
    let mut set = SentinelSet::start(Options::default());
    let url = set.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 2 s leases hand over; 10 s ones (k, pk) outlast the failover.
    let short = ["--interval", "200", "--misses", "10", "--grace", "500"];
    let long = ["--interval", "1000", "--misses", "10", "--grace", "1000"];
    let short_ms = 2000u64;

    // Holders and standbys, all through Sentinel.
    let h = run_on(&url, d, "rs", "h", &short);
    let h_token = started(d, "h", Duration::from_secs(15))
        .expect("h's child")
        .0;
    let mut s = run_on(&url, d, "rs", "s", &short);
    assert!(waiters_on(&set, 0, "rs", 1), "s waits\n{}", s.log());
    let k = run_on(&url, d, "keep", "k", &long);
    let k_token = started(d, "k", Duration::from_secs(15))
        .expect("k's child")
        .0;
    let mut ph = PyLease::start(&set, d, "py", "ph", (200, 10));
    let ph_token = started(d, "ph", Duration::from_secs(15)).expect("ph").0;
    let mut ps = PyLease::start(&set, d, "py", "ps", (200, 10));
    assert!(waiters_on(&set, 0, "py", 1), "ps waits\n{}", ps.log());
    let pk = PyLease::start(&set, d, "pykeep", "pk", (1000, 10));
    let pk_token = started(d, "pk", Duration::from_secs(15)).expect("pk").0;
    let before = [h_token, k_token, ph_token, pk_token];
    let max_before = before.into_iter().max().unwrap_or(0);
    let info = hblock_info(&url, "rs");
    assert!(info.contains("\"state\":\"held\""), "{info}");
    // A master name the Sentinels do not monitor: exit 3, and a hint.
    let wrong = url.replace(&format!("/{MASTER_NAME}"), "/nosuch");
    let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", &wrong, "info", "rs"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "{err}");
    assert!(err.contains("`sentinel monitor`"), "{err}");
    let mut c0 = set.nodes[0].conn();
    let mut c1 = set.nodes[1].conn();
    support::wait_in_sync(&mut c0, &mut c1);
    eprintln!("sentinel: set up in {:?}", began.elapsed());

    // kill -9 of the master, and of the holders h and ph with it (one host
    // going down); k and pk live on.
    let killed = Instant::now();
    let killed_ns = now_ns();
    set.nodes[0].stop();
    h.signal(libc::SIGKILL);
    let _ = ph.child.kill();
    let (new, switched) = set
        .wait_switched(0, Duration::from_secs(30))
        .expect("Sentinel promoted the replica");
    assert_eq!(new, 1);
    let (s_token, s_start) = started(d, "s", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("s never took over\n{}", s.log()));
    let (ps_token, ps_start) = started(d, "ps", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("ps never took over\n{}", ps.log()));
    // From the kill to the standby's first work, by the children's clocks.
    let took = |start: u128| Duration::from_nanos(start.saturating_sub(killed_ns) as u64);
    let (s_took, ps_took) = (took(s_start), took(ps_start));
    // The bound: the lease, the lock's failover delay (auto: its own lease),
    // Sentinel's down-after, and a generous allowance for the election.
    let election = Duration::from_secs(10);
    let bound = Duration::from_millis(2 * short_ms + DOWN_AFTER_MS) + election;
    eprintln!(
        "sentinel kill -9: promoted after {:.0} ms; standby took over after {:.0} ms (hblock run), {:.0} ms (Python); bound {:.0} ms",
        ms(switched.duration_since(killed)),
        ms(s_took),
        ms(ps_took),
        ms(bound)
    );
    assert!(s_took <= bound && ps_took <= bound);
    // Whether s found rs held back when it queued again depends on when
    // its holder's lease ended: shown, not asserted.
    let held_back_lines: Vec<String> = s
        .log()
        .lines()
        .filter(|l| l.contains("grants are held back"))
        .map(String::from)
        .collect();
    let py_lines: Vec<String> = ps
        .log()
        .lines()
        .filter(|l| l.contains("grants are held back"))
        .map(String::from)
        .collect();
    eprintln!("sentinel kill -9: s logged {held_back_lines:?}, ps {py_lines:?}");
    assert!(
        s_token > max_before && ps_token > max_before,
        "tokens after the failover ({s_token}, {ps_token}) above every token before it ({before:?})"
    );
    assert!(
        s_start > killed_ns && ps_start > killed_ns,
        "the standbys started after the kill"
    );
    // The long leases survived: same token on the new master, beats again,
    // the children never stopped.
    let recovered = eventually(Duration::from_secs(15), || {
        k.log().contains(" recovered after ").then_some(())
    });
    assert!(recovered.is_some(), "k's beats recovered\n{}", k.log());
    let mut c1 = set.nodes[1].conn();
    assert_eq!(support::info_int(&mut c1, "keep", "token"), k_token);
    assert_eq!(support::info_int(&mut c1, "pykeep", "token"), pk_token);
    let pk_beats = eventually(Duration::from_secs(15), || {
        (support::info_int(&mut c1, "pykeep", "beats") > 0).then_some(())
    });
    assert!(
        pk_beats.is_some(),
        "pk beats on the new master\n{}",
        pk.log()
    );
    let (k_gap, pk_gap) = (
        longest_gap_ms(&ticks(d, "k"), killed_ns),
        longest_gap_ms(&ticks(d, "pk"), killed_ns),
    );
    eprintln!("sentinel kill -9: longest pause of the surviving children {k_gap:.0} ms (run), {pk_gap:.0} ms (Python)");
    survived(d, &k.log(), &pk.log(), killed_ns);

    // The old master comes back as a replica of the new one; then a planned
    // SENTINEL FAILOVER back to it. New standbys wait: s2 for rs, ps2 for py.
    let replicaof = format!("127.0.0.1 {}", set.nodes[1].port);
    set.nodes[0].crash_and_restart_with(
        Options::default()
            .config("repl-diskless-sync-delay", "0")
            .config("replicaof", &replicaof),
    );
    let mut c0 = set.nodes[0].conn();
    support::wait_in_sync(&mut c1, &mut c0);
    let s2 = run_on(&url, d, "rs", "s2", &short);
    assert!(waiters_on(&set, 1, "rs", 1), "s2 waits\n{}", s2.log());
    let ps2 = PyLease::start(&set, d, "py", "ps2", (200, 10));
    assert!(waiters_on(&set, 1, "py", 1), "ps2 waits\n{}", ps2.log());
    // Watchers of rs and py, through Sentinel: they must see the handovers
    // on the new master (the old one, still up, would show none).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
    cmd.env("HBLOCK_REDIS_URL", &url)
        .args(["watch", "rs", "--json"]);
    let rs_watch = Watcher::start(cmd, d.join("rs.watch"));
    let ports: Vec<String> = set.sentinels.iter().map(|s| s.port.to_string()).collect();
    let mut cmd = Command::new(python());
    cmd.args(["-c", PY_WATCH, &ports.join(","), "py"]).env(
        "PYTHONPATH",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/src"),
    );
    let py_watch = Watcher::start(cmd, d.join("py.watch"));
    assert!(
        rs_watch.shows(s_token, Duration::from_secs(10)),
        "hblock watch started"
    );
    assert!(
        py_watch.shows(ps_token, Duration::from_secs(10)),
        "hblock.watch started"
    );
    let planned = Instant::now();
    let planned_ns = now_ns();
    set.planned_failover();
    let (back, switched) = set
        .wait_switched(1, Duration::from_secs(30))
        .expect("the planned failover switched");
    assert_eq!(back, 0);
    // (Sentinel closed the promoted node's client connections.)
    let mut c0 = set.nodes[0].conn();
    // SENTINEL FAILOVER promotes with REPLICAOF NO ONE and does not pause the
    // old master, which grants until Sentinel demotes it: each lock not held
    // waits its own lease (the longest here: 10 s), a new key the default 3 s.
    let left: i64 = support::info_field(&mut c0, "hblock", "hblock_failover_delay_left_ms")
        .and_then(|v| v.parse().ok())
        .expect("hblock_failover_delay_left_ms");
    let fresh = support::acquire(&mut c0, "brand:new:key", "me", &["WAIT", "10000"]);
    eprintln!(
        "sentinel planned failover: switched after {:.0} ms; delay left {left} ms",
        ms(switched.duration_since(planned))
    );
    assert!(left <= 10_000, "at most the longest lease: {left}");
    assert!(fresh.is_some(), "a brand-new key is granted after its 3 s");
    // Every holder beats on the new master now (a beat that stayed on the
    // old master, still up, would not count there): s, k, ps and pk.
    for key in ["py", "pykeep", "rs", "keep"] {
        beats_on(&set, 0, key);
    }
    // s keeps its lease on the new master (its beats follow Sentinel)...
    let s_kept = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c0, "rs", "token") == s_token
            && support::info_int(&mut c0, "rs", "waiters") == 1)
            .then_some(())
    });
    assert!(
        s_kept.is_some(),
        "s kept rs and s2 waits on the new master\n{}\n{}",
        s.log(),
        s2.log()
    );
    // ps2 was moved too (its wait on the old master closed), and takes over
    // from ps, killed, once ps's connection closes (BIND's 100 ms).
    // (Within 5 s: Sentinel demotes the old master, which would also move
    // it, only about 10 s after the switch.)
    assert!(
        waiters_within(&set, 0, "py", 1, Duration::from_secs(5)),
        "ps2 waits on the new master\n{}",
        ps2.log()
    );
    let ps_killed = now_ns();
    let _ = ps.child.kill();
    let (ps2_token, ps2_start) = started(d, "ps2", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("ps2 never took over\n{}", ps2.log()));
    let py_handover = Duration::from_nanos(ps2_start.saturating_sub(ps_killed) as u64);
    assert!(ps2_token > ps_token);
    // ...and s hands over the moment its child stops.
    s.signal(libc::SIGTERM);
    let stopped = Instant::now();
    let (s2_token, _) = started(d, "s2", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("s2 never took over\n{}", s2.log()));
    let handover = stopped.elapsed();
    eprintln!(
        "sentinel planned failover: s stopped to s2's child {:.0} ms; kill -9 of ps to ps2's work {:.0} ms",
        ms(handover),
        ms(py_handover)
    );
    // Within the locks' own 2 s lease counted from the promotion, and then
    // at once.
    assert!(
        handover < Duration::from_millis(2 * short_ms)
            && py_handover < Duration::from_millis(2 * short_ms),
        "handed over within the lock's own delay"
    );
    assert!(s2_token > s_token);
    assert_eq!(
        s.wait_exit(Duration::from_secs(10)),
        Some(128 + libc::SIGTERM)
    );
    one_at_a_time(d, "h", "s");
    one_at_a_time(d, "s", "s2");
    one_at_a_time(d, "ph", "ps");
    one_at_a_time(d, "ps", "ps2");
    // The watchers followed Sentinel to the new master (within 5 s of the
    // grants: the old master is demoted only ~10 s after the switch).
    assert!(
        rs_watch.shows(s2_token, Duration::from_secs(5)),
        "hblock watch saw s2's grant"
    );
    assert!(
        py_watch.shows(ps2_token, Duration::from_secs(5)),
        "hblock.watch saw ps2's grant"
    );
    survived(d, &k.log(), &pk.log(), planned_ns);
    assert_eq!(support::info_int(&mut c0, "keep", "token"), k_token);
    assert_eq!(support::info_int(&mut c0, "pykeep", "token"), pk_token);
    drop(s2);
    eprintln!(
        "sentinel: {MASTER_NAME} scenario on {} took {:?}",
        std::env::var("SERVER_BIN").unwrap_or_else(|_| "redis-server".into()),
        began.elapsed()
    );
}

#[test]
fn sentinel_urls_that_cannot_work_exit_3_and_passwords_stay_masked() {
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hblock"))
            .args(args)
            .args(["info", "k"])
            .output()
            .expect("hblock")
    };
    // A URL that cannot work: fatal (exit 3), "check the URL".
    for (args, says) in [
        (
            vec!["--redis", "redis+sentinel://127.0.0.1:1"],
            "no /mastername",
        ),
        (
            vec!["--redis", "redis+sentinel://127.0.0.1:1/m?password=x"],
            "unknown parameter",
        ),
    ] {
        let out = cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 3, "{args:?}: {err}");
        assert!(
            err.contains(says) && err.trim_end().ends_with(": check the URL"),
            "{args:?}: {err}"
        );
    }
    // Options that do not go together: a usage error (exit 2).
    let out = cli(&["--cluster", "--redis", "redis+sentinel://127.0.0.1:1/m"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("give it alone"), "{err}");
    // Nothing listens there: exit 3, and neither password is shown.
    let out = cli(&[
        "--redis",
        "redis+sentinel://app:s3cret@127.0.0.1:1,127.0.0.1:2/m?sentinel_password=t0ps3cret",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "{err}");
    assert!(
        err.contains("app:***@127.0.0.1:1,127.0.0.1:2/m?sentinel_password=***"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

/// A Sentinel that accepts connections and never answers (hung, or a
/// firewall that drops replies), listed first: the others still name the
/// master, within the lookup's time (each Sentinel gets its share).
#[test]
fn a_hung_sentinel_listed_first_does_not_stall_the_lookup() {
    let set = SentinelSet::start(Options::default());
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let hung_port = hung.local_addr().expect("its address").port();
    let url = set.url().replace(
        "redis+sentinel://",
        &format!("redis+sentinel://127.0.0.1:{hung_port},"),
    );
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", &url, "acquire", "hung:first", "--owner", "me"])
        .output()
        .expect("hblock");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("sentinel: lookup past a hung Sentinel took {took:?}");
    assert_eq!(code(&out), 0, "acquired through the other Sentinels: {err}");
    drop(hung);
}

/// SIGCONT to a stopped server when the test ends, however it ends.
struct Resume(Option<u32>);

impl Drop for Resume {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) on a server this test started and stopped.
            unsafe {
                libc::kill(pid as i32, libc::SIGCONT);
            }
        }
    }
}

/// Issue #24: a standby blocked in `ACQUIRE ... WAIT 0` on a master that
/// hangs (SIGSTOP: its socket open, no reply, CLIENT KILL impossible)
/// moves to the replica Sentinel promotes and runs its child there, within
/// the lease + the lock's failover delay + down-after + an election, and
/// never while the old holder's child runs.
#[test]
fn a_standby_waiting_on_a_hung_master_moves_to_the_promoted_replica() {
    let mut set = SentinelSet::start(Options::default());
    let url = set.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A 2 s lease: the failover delay of this lock is 2 s too.
    let short = ["--interval", "200", "--misses", "10", "--grace", "500"];
    let lease_ms = 2000u64;
    let h = run_on(&url, d, "hung", "h", &short);
    started(d, "h", Duration::from_secs(15)).expect("h's child");
    let s = run_on(&url, d, "hung", "s", &short);
    assert!(waiters_on(&set, 0, "hung", 1), "s waits\n{}", s.log());
    let mut c0 = set.nodes[0].conn();
    let mut c1 = set.nodes[1].conn();
    support::wait_in_sync(&mut c0, &mut c1);
    // A watcher through Sentinel must move too.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
    cmd.env("HBLOCK_REDIS_URL", &url)
        .args(["watch", "hung", "--json"]);
    let watch = Watcher::start(cmd, d.join("hung.watch"));

    // The master hangs, and the holder's host goes down with it.
    let pid = set.nodes[0].pid().expect("the master runs");
    let resume = Resume(Some(pid));
    let stopped = Instant::now();
    let stopped_ns = now_ns();
    // SAFETY: kill(2) on the server this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGSTOP);
    }
    h.signal(libc::SIGKILL);
    let (new, switched) = set
        .wait_switched(0, Duration::from_secs(30))
        .expect("Sentinel promoted the replica");
    assert_eq!(new, 1);
    let (s_token, s_start) = started(d, "s", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("s never took over from the hung master\n{}", s.log()));
    let took = Duration::from_nanos(s_start.saturating_sub(stopped_ns) as u64);
    let election = Duration::from_secs(10);
    let bound = Duration::from_millis(2 * lease_ms + DOWN_AFTER_MS) + election;
    eprintln!(
        "sentinel SIGSTOP: promoted after {:.0} ms; the standby's child started {:.0} ms after the stop (bound {:.0} ms)",
        ms(switched.duration_since(stopped)),
        ms(took),
        ms(bound)
    );
    assert!(took <= bound, "{took:?} > {bound:?}\n{}", s.log());
    // Granted by the new master, the old one still hung.
    let mut c1 = set.nodes[1].conn();
    assert_eq!(support::info_int(&mut c1, "hung", "token"), s_token);
    assert_eq!(support::state(&mut c1, "hung"), "held");
    one_at_a_time(d, "h", "s");
    assert!(
        watch.shows(s_token, Duration::from_secs(10)),
        "hblock watch followed Sentinel away from the hung master"
    );
    assert!(
        !s.log().contains("lost") && !s.log().contains("killing"),
        "{}",
        s.log()
    );
    drop(s);
    drop(resume);
    set.nodes[0].stop();
}

/// Issue #24 (low): a master name no Sentinel monitors is a configuration
/// error (exit 3 at once, naming the name and the masked URL), not an
/// endless wait; an authentication error says which side refused: the data
/// node (the URL's user and password) or a Sentinel (`sentinel_password`).
#[test]
fn sentinel_errors_name_their_side_and_a_wrong_master_name_is_fatal() {
    let set = SentinelSet::start(Options::default());
    let url = set.url();
    let cli = |url: &str, args: &[&str]| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
            .args(["--redis", url])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("hblock");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (code(&out), err, started.elapsed())
    };
    let run = ["run", "k", "--owner", "o", "--", "true"];
    let wrong_name = url.replace(&format!("/{MASTER_NAME}"), "/nosuch");
    for args in [&run[..], &["info", "k"], &["watch", "k"]] {
        let (code, err, took) = cli(&wrong_name, args);
        eprintln!("sentinel: wrong master name, {args:?}: exit {code} after {took:?}");
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(
            err.contains(&format!("k: {wrong_name}: Sentinel 127.0.0.1:"))
                && err.contains("monitors no master named \"nosuch\"")
                && err.trim_end().ends_with(": check the URL"),
            "{args:?}: {err}"
        );
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    // The data node refuses the URL's user.
    let node_auth = url.replace("redis+sentinel://", "redis+sentinel://nosuch:N0dePw@");
    for args in [&run[..], &["info", "k"]] {
        let (code, err, _) = cli(&node_auth, args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(
            err.contains("redis+sentinel://nosuch:***@")
                && err.contains(": data node 127.0.0.1:")
                && err
                    .trim_end()
                    .ends_with(": wrong user name or password in the URL")
                && !err.contains("N0dePw"),
            "{args:?}: {err}"
        );
    }
    // A Sentinel refuses its own credentials.
    let sentinel_auth = format!("{url}?sentinel_username=nosuch&sentinel_password=S3ntPw");
    for args in [&run[..], &["info", "k"]] {
        let (code, err, _) = cli(&sentinel_auth, args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(
            err.contains("sentinel_password=***")
                && err.contains(": Sentinel 127.0.0.1:")
                && err.contains("wrong user name or password in the URL (the Sentinels' own password goes in ?sentinel_password=")
                && !err.contains("S3ntPw"),
            "{args:?}: {err}"
        );
    }
}
