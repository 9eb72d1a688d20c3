//! The `hblock` CLI and the Python example as real processes against a real
//! server with the module loaded.

use hblock_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{eventually, Server};

fn hblock(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hblock"))
        .arg("--redis")
        .arg(server.url())
        .args(args)
        .output()
        .expect("run hblock")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// `hblock run` in the background, its stderr kept in a file.
struct Supervisor {
    child: Child,
    log: PathBuf,
}

impl Supervisor {
    fn start(server: &Server, dir: &Path, name: &str, args: &[&str], command: &str) -> Supervisor {
        Supervisor::start_on(&[server.url()], dir, name, args, command)
    }

    /// `urls` of more than one node: a cluster.
    fn start_on(
        urls: &[String],
        dir: &Path,
        name: &str,
        args: &[&str],
        command: &str,
    ) -> Supervisor {
        let log = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
        for url in urls {
            cmd.arg("--redis").arg(url);
        }
        let child = cmd
            .arg("run")
            .arg(default_key())
            .args(args)
            .args(["--owner", name])
            .args(["--", "sh", "-c", command])
            .env("DIR", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start hblock run");
        Supervisor { child, log }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a process this test started.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let status = eventually(within, || self.child.try_wait().ok().flatten())?;
        Some(status.code().unwrap_or(-1))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- hblock run log {} ---\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Whether a process runs: an exited child whose parent died stays a zombie
/// until init reaps it, so /proc's state is read instead of kill(pid, 0).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn wait_pid_file(path: &Path, within: Duration) -> Option<i32> {
    eventually(within, || read_pid(path))
}

/// The child of `hblock run` that writes its pid and then sleeps.
const SLEEPER: &str = "echo $$ > \"$DIR/$HBLOCK_OWNER.pid\"; exec sleep 60";

#[test]
fn thin_commands_print_replies_and_exit_codes() {
    let server = Server::start();
    let acquired = hblock(&server, &["acquire", "k", "--owner", "a"]);
    assert_eq!((code(&acquired), stdout(&acquired).as_str()), (0, "1"));
    let busy = hblock(&server, &["acquire", "k", "--owner", "b"]);
    assert_eq!((code(&busy), stdout(&busy).as_str()), (1, ""));
    let generated = hblock(&server, &["acquire", "other"]);
    assert_eq!(code(&generated), 0);
    assert!(
        String::from_utf8_lossy(&generated.stderr).contains("owner="),
        "the generated owner is shown"
    );
    let beat = hblock(&server, &["beat", "k", "a", "1"]);
    assert_eq!((code(&beat), stdout(&beat).as_str()), (0, "1"));
    let refused = hblock(&server, &["beat", "k", "b", "1"]);
    assert_eq!(code(&refused), 1);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("NOTHELD"));
    let info = hblock(&server, &["info", "k"]);
    assert_eq!(code(&info), 0);
    assert!(
        stdout(&info).contains("state      held") && stdout(&info).contains("owner      a"),
        "{}",
        stdout(&info)
    );
    let json = hblock(&server, &["info", "k", "--json"]);
    assert_eq!(code(&json), 0);
    let text = stdout(&json);
    assert!(
        text.starts_with(
            "{\"state\":\"held\",\"owner\":\"a\",\"token\":1,\"interval\":1000,\"misses\":3,"
        ),
        "{text}"
    );
    assert!(text.ends_with("\"takeovers\":0,\"waiters\":0}"), "{text}");
    let released = hblock(&server, &["release", "k", "a", "1"]);
    assert_eq!((code(&released), stdout(&released).as_str()), (0, "1"));
    let again = hblock(&server, &["release", "k", "a", "1"]);
    assert_eq!((code(&again), stdout(&again).as_str()), (1, "0"));
    let missing = hblock(&server, &["info", "nokey"]);
    assert_eq!(code(&missing), 1);
    let waited = hblock(&server, &["acquire", "k", "--owner", "c", "--wait", "100"]);
    assert_eq!(
        (code(&waited), stdout(&waited).as_str()),
        (0, "2"),
        "free: no wait needed"
    );
    let timed_out = hblock(&server, &["acquire", "k", "--owner", "d", "--wait", "100"]);
    assert_eq!(code(&timed_out), 1);
    assert_eq!(code(&hblock(&server, &["bogus"])), 2, "usage error");
    assert_eq!(
        code(&hblock(&server, &["acquire", "k", "--interval", "0"])),
        2
    );
    let unreachable = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", "redis://127.0.0.1:1", "info", "k"])
        .output()
        .unwrap();
    assert_eq!(code(&unreachable), 3);
    // A URL that does not parse, and tokens that are not positive, are usage
    // errors; the message shows the URL without its password.
    let bad_url = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", "redis://u:s3cret@:::bad", "info", "k"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad_url.stderr);
    assert_eq!(code(&bad_url), 2, "{stderr}");
    assert!(
        stderr.contains("redis://u:***@:::bad") && !stderr.contains("s3cret"),
        "{stderr}"
    );
    for token in ["0", "-5"] {
        let beat = hblock(&server, &["beat", "k", "o", token]);
        assert_eq!(code(&beat), 2, "beat with token {token}");
    }
}

/// Parses `start|stop TOKEN NANOS` lines written by the children.
fn timeline(path: &Path) -> Vec<(String, i64, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn three_supervisors_run_one_child_at_a_time_and_hand_over_at_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("timeline");
    let child = format!(
        "echo start $HBLOCK_TOKEN $(date +%s%N) >> {0}; sleep 0.3; echo stop $HBLOCK_TOKEN $(date +%s%N) >> {0}",
        log.display()
    );
    let mut sups: Vec<Supervisor> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| Supervisor::start(&server, dir.path(), name, &["--interval", "100"], &child))
        .collect();
    for sup in &mut sups {
        assert_eq!(
            sup.wait_exit(Duration::from_secs(20)),
            Some(0),
            "{}",
            sup.log()
        );
    }
    let events = timeline(&log);
    assert_eq!(events.len(), 6, "{events:?}");
    let mut gaps = Vec::new();
    for (i, pair) in events.chunks(2).enumerate() {
        let (start, stop) = (&pair[0], &pair[1]);
        assert_eq!(
            (start.0.as_str(), stop.0.as_str()),
            ("start", "stop"),
            "never two children at once: {events:?}"
        );
        assert_eq!(
            (start.1, stop.1),
            (i as i64 + 1, i as i64 + 1),
            "tokens 1, 2, 3 in turn"
        );
        if i > 0 {
            gaps.push(start.2.saturating_sub(events[2 * i - 1].2));
        }
    }
    let gaps_ms: Vec<f64> = gaps.iter().map(|g| *g as f64 / 1e6).collect();
    eprintln!("child exit to the standby's child start: {gaps_ms:?} ms");
    for gap in gaps_ms {
        assert!(
            gap < 100.0,
            "standby child started {gap} ms after the previous one stopped"
        );
    }
}

#[test]
fn kill_9_of_the_supervisor_kills_its_child_and_a_standby_takes_over() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let terms = ["--interval", "100", "--misses", "3"]; // 300 ms lease
    let active = Supervisor::start(&server, dir.path(), "a", &terms, SLEEPER);
    let a_child =
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("a's child");
    let _standby = Supervisor::start(&server, dir.path(), "b", &terms, SLEEPER);
    let mut c = server.conn();
    let waiting = eventually(Duration::from_secs(5), || {
        let n: i64 = support::info_int(&mut c, default_key(), "waiters");
        (n == 1).then_some(())
    });
    assert!(waiting.is_some(), "b waits");
    let killed = Instant::now();
    active.signal(libc::SIGKILL);
    let dead = eventually(Duration::from_secs(2), || {
        (!alive(a_child)).then_some(Instant::now())
    });
    assert!(dead.is_some(), "a's child survived its supervisor");
    let b_child =
        wait_pid_file(&dir.path().join("b.pid"), Duration::from_secs(5)).expect("b took over");
    let took = killed.elapsed();
    eprintln!(
        "kill -9 to the standby's child: {took:?} (lease 300 ms)\n{}",
        _standby.log()
    );
    assert!(
        took < Duration::from_millis(300 + 400),
        "standby took {took:?}"
    );
    assert!(alive(b_child));
}

/// `hblock run KEY`: the key used by the supervisor tests.
fn default_key() -> &'static str {
    "job"
}

#[test]
fn a_paused_supervisor_learns_notheld_and_stops_its_child() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let terms = ["--interval", "100", "--misses", "2", "--grace", "1000"];
    let mut active = Supervisor::start(&server, dir.path(), "a", &terms, SLEEPER);
    let a_child =
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("a's child");
    let _standby = Supervisor::start(&server, dir.path(), "b", &terms, SLEEPER);
    active.signal(libc::SIGSTOP);
    let b_child =
        wait_pid_file(&dir.path().join("b.pid"), Duration::from_secs(5)).expect("b took over");
    assert!(alive(b_child));
    let resumed = Instant::now();
    active.signal(libc::SIGCONT);
    let stopped = eventually(Duration::from_secs(3), || {
        (!alive(a_child)).then_some(Instant::now())
    });
    let stopped = stopped.expect("the old child was stopped");
    let took = stopped.duration_since(resumed);
    eprintln!("SIGCONT to the old child's end: {took:?} (interval 100 ms)");
    assert!(took < Duration::from_millis(100 + 400), "took {took:?}");
    assert_eq!(
        active.wait_exit(Duration::from_secs(5)),
        Some(4),
        "lost-the-lease exit code"
    );
    assert!(
        active.log().contains("lost job: NOTHELD"),
        "{}",
        active.log()
    );
}

#[test]
fn redis_going_away_stops_the_child_before_the_lease_could_end() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let terms = ["--interval", "100", "--misses", "3"]; // 300 ms lease
    let mut active = Supervisor::start(&server, dir.path(), "a", &terms, SLEEPER);
    let a_child =
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("a's child");
    // A few beats; the last beat the server saw was sent before the moment
    // Redis stops, so the lease ends there no later than 300 ms after it.
    let mut c = server.conn();
    let beating = support::eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "beats") >= 2).then_some(())
    });
    assert!(beating.is_some(), "the supervisor never beat");
    let stopped = Instant::now();
    server.stop();
    let dead = eventually(Duration::from_secs(3), || {
        (!alive(a_child)).then_some(Instant::now())
    })
    .expect("the child was stopped");
    let took = dead.duration_since(stopped);
    eprintln!("Redis stopped to the child's end: {took:?} (lease 300 ms)");
    assert!(
        took < Duration::from_millis(300),
        "the child outlived the lease: {took:?}"
    );
    assert_eq!(active.wait_exit(Duration::from_secs(5)), Some(4));
}

#[test]
fn a_child_exit_status_is_passed_on_and_the_lock_released() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut sup = Supervisor::start(
        &server,
        dir.path(),
        "a",
        &[],
        "test \"$HBLOCK_KEY:$HBLOCK_TOKEN\" = job:1 && exit 7",
    );
    assert_eq!(
        sup.wait_exit(Duration::from_secs(10)),
        Some(7),
        "{}",
        sup.log()
    );
    let mut c = server.conn();
    assert_eq!(support::state(&mut c, "job"), "free", "released at once");
    let mut killed = Supervisor::start(&server, dir.path(), "b", &[], "kill -9 $$");
    assert_eq!(killed.wait_exit(Duration::from_secs(10)), Some(128 + 9));
}

#[test]
fn sigterm_is_forwarded_then_the_lock_released() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut sup = Supervisor::start(&server, dir.path(), "a", &[], SLEEPER);
    let child = wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("child");
    sup.signal(libc::SIGTERM);
    assert_eq!(
        sup.wait_exit(Duration::from_secs(5)),
        Some(128 + libc::SIGTERM)
    );
    assert!(!alive(child));
    let mut c = server.conn();
    assert_eq!(support::state(&mut c, "job"), "free");
    // A standby interrupted while waiting leaves the queue.
    let _holder = Supervisor::start(&server, dir.path(), "h", &[], SLEEPER);
    wait_pid_file(&dir.path().join("h.pid"), Duration::from_secs(5)).expect("holder");
    let mut waiter = Supervisor::start(&server, dir.path(), "w", &[], SLEEPER);
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, "job", "waiters") == 1).then_some(())
    });
    assert!(queued.is_some());
    waiter.signal(libc::SIGINT);
    assert_eq!(
        waiter.wait_exit(Duration::from_secs(5)),
        Some(128 + libc::SIGINT)
    );
    let left = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, "job", "waiters") == 0).then_some(())
    });
    assert!(left.is_some(), "the interrupted standby left the queue");
}

fn python() -> String {
    std::env::var("HBLOCK_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python");
        assert!(
            venv.exists(),
            "no Python with redis-py: run `make venv` (make test does)"
        );
        venv.display().to_string()
    })
}

#[test]
fn the_python_example_fails_over_between_two_instances() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/leader.py");
    let start = |name: &str| {
        let out = dir.path().join(format!("{name}.out"));
        let child = Command::new(python())
            .arg(&example)
            .args([
                "--redis",
                &server.url(),
                "--key",
                "py",
                "--owner",
                name,
                "--interval",
                "100",
                "--misses",
                "2",
            ])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python");
        (child, out)
    };
    let saw = |path: &Path, text: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(text)
    };
    let (mut first, first_out) = start("first");
    assert!(eventually(Duration::from_secs(10), || saw(
        &first_out,
        "acquired py token=1"
    )
    .then_some(()))
    .is_some());
    let (mut second, second_out) = start("second");
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(10), || {
        (support::info_int(&mut c, "py", "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "second waits");
    assert!(!saw(&second_out, "working"), "only one instance works");
    first.kill().unwrap(); // SIGKILL: a crash, no release
    let _ = first.wait();
    let crashed = Instant::now();
    assert!(eventually(Duration::from_secs(5), || saw(
        &second_out,
        "acquired py token=2"
    )
    .then_some(()))
    .is_some());
    eprintln!(
        "python: crash to takeover {:?} (lease 200 ms)",
        crashed.elapsed()
    );
    assert!(eventually(Duration::from_secs(5), || saw(
        &second_out,
        "working token=2"
    )
    .then_some(()))
    .is_some());
    // SIGTERM: the instance releases and exits 0.
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(second.id() as i32, libc::SIGTERM);
    }
    let status =
        eventually(Duration::from_secs(5), || second.try_wait().ok().flatten()).expect("exit");
    assert_eq!(status.code(), Some(0));
    assert!(saw(&second_out, "released py token=2: 1"));
    assert_eq!(support::state(&mut c, "py"), "free");
}

#[test]
fn min_replicas_waits_for_the_grant_to_be_replicated() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let mut r = replica.conn();
    let linked = eventually(Duration::from_secs(10), || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut r).ok()?;
        info.contains("master_link_status:up").then_some(())
    });
    assert!(linked.is_some(), "replica linked");
    let ok = hblock(
        &master,
        &["acquire", "k", "--owner", "a", "--min-replicas", "1"],
    );
    assert_eq!(
        (code(&ok), stdout(&ok).as_str()),
        (0, "1"),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut m = master.conn();
    assert_eq!(
        support::state(&mut m, "k"),
        "held",
        "detached, not released"
    );
    let too_many = hblock(
        &master,
        &[
            "acquire",
            "k2",
            "--owner",
            "b",
            "--min-replicas",
            "2",
            "--replica-timeout",
            "200",
        ],
    );
    assert_eq!(
        code(&too_many),
        3,
        "{}",
        String::from_utf8_lossy(&too_many.stderr)
    );
    assert!(String::from_utf8_lossy(&too_many.stderr).contains("only 1 of 2 replicas"));
    assert_eq!(
        support::state(&mut m, "k2"),
        "free",
        "a grant not replicated enough is released"
    );
    drop(replica);
}

#[test]
fn run_on_a_cluster_rides_out_a_master_failover() {
    let mut cluster = support::cluster::Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    // A 10 s lease (1 s x 10) outlasts the failover; grace 1 s.
    let terms = ["--interval", "1000", "--misses", "10", "--grace", "1000"];
    let mut sup = Supervisor::start_on(&urls, dir.path(), "a", &terms, SLEEPER);
    let child =
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(10)).expect("child started");
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
        cmd.arg("--cluster");
        for url in &urls {
            cmd.arg("--redis").arg(url);
        }
        cmd.args(args).output().unwrap()
    };
    let info = cli(&["info", "job", "--json"]);
    assert!(
        stdout(&info).contains("\"state\":\"held\""),
        "{}",
        stdout(&info)
    );
    // Thin commands reach keys in every slot.
    for i in 0..10 {
        let out = cli(&["acquire", &format!("thin:{i}"), "--owner", "t"]);
        assert_eq!((code(&out), stdout(&out).as_str()), (0, "1"));
    }

    let master = cluster.master_of("job");
    let killed = Instant::now();
    cluster.nodes[master].stop();
    let recovered = eventually(Duration::from_secs(30), || {
        sup.log()
            .contains("succeed again")
            .then_some(Instant::now())
    });
    let recovered = recovered.unwrap_or_else(|| panic!("beats never recovered:\n{}", sup.log()));
    eprintln!(
        "cluster failover under hblock run: beats failed for {:?}",
        recovered.duration_since(killed)
    );
    assert!(sup.log().contains("beat of job failed"), "{}", sup.log());
    assert!(alive(child), "the child kept running through the failover");
    assert_ne!(cluster.master_of("job"), master, "a replica was promoted");

    sup.signal(libc::SIGTERM);
    assert_eq!(
        sup.wait_exit(Duration::from_secs(10)),
        Some(128 + libc::SIGTERM)
    );
    let info = cli(&["info", "job", "--json"]);
    assert!(
        stdout(&info).contains("\"state\":\"free\""),
        "released on the new master: {}",
        stdout(&info)
    );
    assert!(
        stdout(&info).contains("\"token\":1"),
        "the same lease, token 1"
    );
}

#[test]
fn redis_py_cluster_client_routes_hblock_commands() {
    let cluster = support::cluster::Cluster::start();
    let script = r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]), protocol=2)
for i in range(30):
    key = f"py:{i}"
    assert rc.execute_command("HBLOCK.ACQUIRE", key, "me", "INTERVAL", 60000) == 1, key
    assert rc.execute_command("HBLOCK.BEAT", key, "me", 1) == 1, key
    info = rc.execute_command("HBLOCK.INFO", key)
    assert info[1] == b"held" and info[3] == b"me", info
    assert rc.execute_command("HBLOCK.RELEASE", key, "me", 1) == 1, key
print("redis-py RedisCluster: 30 locks ok")
"#;
    let out = Command::new(python())
        .args(["-c", script, &cluster.nodes[0].port.to_string()])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("30 locks ok"));
}
