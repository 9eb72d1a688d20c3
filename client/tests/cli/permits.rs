//! Permits (LIMIT > 1) from the client side: `hblock run --limit 2` with
//! more supervisors than permits (a child exits, a supervisor is killed -9),
//! `acquire --limit` mismatch (exit 3 with the hint), `info`/`ls`/exporter
//! showing every holder, and a LIMIT 3 holder's heartbeat staying quiet.

use super::exporter::{http_get, parse, Exporter};
use super::*;
use hblock_client::{Client, LeaseOptions};

/// The child of `hblock run`: its pid and token in files, then sleeps.
const HOLDER: &str =
    "echo $HBLOCK_TOKEN > \"$DIR/$NAME.token\"; echo $$ > \"$DIR/$NAME.pid\"; exec sleep 60";

/// The names whose child has written its pid file and still runs.
fn running(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| read_pid(&dir.join(format!("{n}.pid"))).is_some_and(alive))
        .map(|n| n.to_string())
        .collect()
}

fn waiters(c: &mut redis::Connection) -> i64 {
    support::info_int(c, default_key(), "waiters")
}

#[test]
fn run_limit_2_runs_two_children_and_the_next_starts_when_one_exits_or_is_killed() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = server.conn();
    let args = ["--limit", "2"];
    // Default terms: a 3 s lease, so a start well within it after a kill -9
    // is the binding's doing.
    let a = Supervisor::start(&server, d, "a", &args, HOLDER);
    let mut b = Supervisor::start(&server, d, "b", &args, HOLDER);
    let both = eventually(Duration::from_secs(10), || {
        (running(d, &["a", "b"]).len() == 2).then_some(())
    });
    assert!(both.is_some(), "a and b run\n{}\n{}", a.log(), b.log());
    let waiting = Supervisor::start(&server, d, "c", &args, HOLDER);
    let queued = eventually(Duration::from_secs(5), || {
        (waiters(&mut c) == 1).then_some(())
    });
    assert!(queued.is_some(), "c waits\n{}", waiting.log());
    let later = Supervisor::start(&server, d, "d", &args, HOLDER);
    let queued = eventually(Duration::from_secs(5), || {
        (waiters(&mut c) == 2).then_some(())
    });
    assert!(queued.is_some(), "d waits\n{}", later.log());
    assert_eq!(support::info_int(&mut c, default_key(), "limit"), 2);
    assert_eq!(support::info_int(&mut c, default_key(), "holders"), 2);
    assert_eq!(running(d, &["a", "b", "c", "d"]), ["a", "b"]);
    let token = |name: &str| -> i64 {
        std::fs::read_to_string(d.join(format!("{name}.token")))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(token("a") > 0 && token("b") > 0 && token("a") != token("b"));

    // b's child exits: b releases, the head of the queue (c) starts.
    let b_child = read_pid(&d.join("b.pid")).expect("b's pid");
    let exited = Instant::now();
    // SAFETY: kill(2) on a process this test started (through hblock run).
    unsafe {
        libc::kill(b_child, libc::SIGTERM);
    }
    let c_runs = eventually(Duration::from_secs(5), || {
        running(d, &["c"]).len().eq(&1).then_some(exited.elapsed())
    })
    .unwrap_or_else(|| panic!("c took b's permit\n{}", waiting.log()));
    eprintln!("a holder's child exits to the waiter's child: {c_runs:?}");
    assert!(b.wait_exit(Duration::from_secs(10)).is_some(), "b exits");
    assert_eq!(running(d, &["a", "c", "d"]), ["a", "c"]);
    assert_eq!(waiters(&mut c), 1);

    // kill -9 of a's supervisor: its child stops, d starts within the BIND
    // grace (far inside the 3 s lease).
    let a_child = read_pid(&d.join("a.pid")).expect("a's pid");
    let killed = Instant::now();
    a.signal(libc::SIGKILL);
    let d_runs = eventually(Duration::from_secs(5), || {
        running(d, &["d"]).len().eq(&1).then_some(killed.elapsed())
    })
    .unwrap_or_else(|| panic!("d took a's permit\n{}", later.log()));
    let a_stopped = eventually(Duration::from_secs(5), || (!alive(a_child)).then_some(()));
    assert!(a_stopped.is_some(), "a's child stopped after kill -9 of a");
    eprintln!("kill -9 of a holder to the waiter's child: {d_runs:?} (grace 100 ms)");
    assert!(d_runs < Duration::from_millis(1500), "took {d_runs:?}");
    assert_eq!(running(d, &["a", "b", "c", "d"]), ["c", "d"]);
    let tokens = [token("a"), token("b"), token("c"), token("d")];
    let mut distinct = tokens.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "tokens {tokens:?}");
}

#[test]
fn acquire_limit_mismatch_is_fatal_with_a_hint_and_bad_limits_are_usage_errors() {
    let server = Server::start();
    let first = hblock(&server, &["acquire", "sem", "--owner", "a", "--limit", "3"]);
    assert_eq!(code(&first), 0, "{first:?}");
    let other = hblock(&server, &["acquire", "sem", "--owner", "b", "--limit", "2"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(code(&other), 3, "{stderr}");
    assert!(
        stderr.contains("LIMIT 2 does not match the lock's limit 3"),
        "{stderr}"
    );
    assert!(stderr.contains("hblock info KEY"), "{stderr}");
    assert_eq!(stdout(&other), "");
    // Nothing changed: still one holder, limit 3.
    let mut c = server.conn();
    assert_eq!(support::info_int(&mut c, "sem", "limit"), 3);
    assert_eq!(support::info_int(&mut c, "sem", "holders"), 1);
    // `run` with the wrong limit: exit 3 before any child starts.
    let run = hblock(
        &server,
        &["run", "sem", "--limit", "5", "--", "sh", "-c", "exit 0"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(code(&run), 3, "{stderr}");
    assert!(
        stderr.contains("does not match the lock's limit"),
        "{stderr}"
    );
    for bad in ["0", "1001", "x"] {
        let out = hblock(&server, &["acquire", "sem", "--limit", bad]);
        assert_eq!(code(&out), 2, "--limit {bad}: {out:?}");
    }
}

#[test]
fn info_ls_and_the_exporter_show_limit_holders_and_every_holder() {
    let server = Server::start();
    for owner in ["a", "b"] {
        let out = hblock(
            &server,
            &["acquire", "sem", "--owner", owner, "--limit", "3"],
        );
        assert_eq!(code(&out), 0, "{out:?}");
    }
    let one = hblock(&server, &["acquire", "one", "--owner", "z"]);
    assert_eq!(code(&one), 0, "{one:?}");

    let text = stdout(&hblock(&server, &["info", "sem"]));
    assert!(text.contains("\nlimit      3\nholders    2\n"), "{text}");
    let holders: Vec<&str> = text.lines().filter(|l| l.starts_with("holder ")).collect();
    assert_eq!(holders.len(), 2, "{text}");
    assert!(
        holders[0].starts_with("holder     owner=a token="),
        "{text}"
    );
    assert!(
        holders[1].starts_with("holder     owner=b token="),
        "{text}"
    );
    // A one-holder lock: INFO names its holder, no holder lines.
    let text = stdout(&hblock(&server, &["info", "one"]));
    assert!(text.ends_with("limit      1\nholders    1"), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&hblock(&server, &["info", "sem", "--json"]))).unwrap();
    assert_eq!(
        (json["limit"].as_i64(), json["holders"].as_i64()),
        (Some(3), Some(2))
    );
    let list = json["holders_list"].as_array().expect("holders_list");
    let owners: Vec<&str> = list.iter().filter_map(|h| h["owner"].as_str()).collect();
    assert_eq!(owners, ["a", "b"]);
    let tokens: Vec<i64> = list.iter().filter_map(|h| h["token"].as_i64()).collect();
    assert!(tokens.len() == 2 && tokens[0] < tokens[1], "{json}");
    assert!(list.iter().all(|h| h["ttl"].as_i64() > Some(0)), "{json}");

    let ls = stdout(&hblock(&server, &["ls"]));
    let sem = ls
        .lines()
        .find(|l| l.starts_with("sem"))
        .expect("sem listed");
    assert!(sem.ends_with(" holders=2/3"), "{ls}");
    let one = ls
        .lines()
        .find(|l| l.starts_with("one"))
        .expect("one listed");
    assert!(!one.contains("holders="), "{ls}");
    let ls = stdout(&hblock(&server, &["ls", "--json"]));
    let sem: serde_json::Value = ls
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["key"] == "sem")
        .expect("sem in ls --json");
    assert_eq!(
        (sem["limit"].as_i64(), sem["holders"].as_i64()),
        (Some(3), Some(2))
    );

    let exporter = Exporter::start(&[server.url()], &[]);
    let (status, body) = http_get(&exporter.addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let m = parse(&body);
    for (series, want) in [
        ("hblock_lock_limit{key=\"sem\"}", 3.0),
        ("hblock_lock_holders{key=\"sem\"}", 2.0),
        ("hblock_lock_limit{key=\"one\"}", 1.0),
        ("hblock_lock_holders{key=\"one\"}", 1.0),
        ("hblock_lock_holder_info{key=\"sem\",owner=\"a\"}", 1.0),
        ("hblock_lock_holder_info{key=\"sem\",owner=\"b\"}", 1.0),
        ("hblock_lock_holder_info{key=\"one\",owner=\"z\"}", 1.0),
    ] {
        assert_eq!(m.get(series).copied(), Some(want), "{series}\n{body}");
    }
    if let Some(promtool) = super::prometheus::program("promtool") {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, body.as_bytes()).expect("write to promtool");
        }
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `calls=` of `cmdstat_<command>` in INFO commandstats (0 when never called).
fn calls(c: &mut redis::Connection, command: &str) -> u64 {
    let stats: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// On a LIMIT > 1 lock WATCH's SEEN is the last token issued, not the
/// holder's own: a heartbeat passing its own token would get an answer at
/// once, forever. A bound LIMIT 3 holder idle for 3 s (and through 3 grants
/// and releases of another owner) sends a handful of commands, and keeps
/// its lease.
#[test]
fn a_limit_3_holder_idle_for_seconds_sends_a_bounded_number_of_commands() {
    let server = Server::start();
    let client = Client::open(&server.url()).unwrap();
    let options = LeaseOptions {
        interval: Duration::from_millis(500),
        limit: 3,
        ..LeaseOptions::default()
    };
    let lease = client
        .acquire_as("sem", b"idle", &options, |_| {})
        .expect("acquire")
        .expect("granted");
    let mut c = server.conn();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    for _ in 0..3 {
        let other = client
            .acquire_as(
                "sem",
                b"other",
                &LeaseOptions {
                    bind: None,
                    ..options.clone()
                },
                |_| {},
            )
            .expect("acquire")
            .expect("granted");
        assert_ne!(other.token(), lease.token());
        drop(other);
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (watches, checks, beats) = (
        calls(&mut c, "hblock.watch"),
        calls(&mut c, "hblock.check"),
        calls(&mut c, "hblock.beat"),
    );
    eprintln!("3 s of a LIMIT 3 holder at 500 ms: {watches} WATCH, {checks} CHECK, {beats} BEAT");
    assert!(beats >= 3, "{beats} beats");
    assert!(watches + checks < 60, "{watches} WATCH + {checks} CHECK");
    assert!(!lease.is_lost());
    assert_eq!(support::info_int(&mut c, "sem", "holders"), 1);
    // A different limit is refused while it is held, with the hint.
    let err = client
        .acquire_as(
            "sem",
            b"x",
            &LeaseOptions {
                limit: 2,
                ..options.clone()
            },
            |_| {},
        )
        .err()
        .expect("refused");
    assert!(
        matches!(err.class(), hblock_client::Class::LimitMismatch),
        "{err:?}"
    );
    assert!(err.is_fatal() && err.hint().is_some());
}

/// `hblock watch` on a LIMIT 2 lock: one line per grant and per lease end
/// (the Watch iterator passes back INFO's last token), none missed.
#[test]
fn watch_prints_a_line_per_grant_and_end_of_a_limit_2_lock() {
    use std::io::{BufRead, BufReader};
    let server = Server::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", &server.url(), "watch", "w"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("hblock watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(next(), "free", "no such lock yet");
    let acquire = |owner: &str| {
        let out = hblock(
            &server,
            &[
                "acquire",
                "w",
                "--owner",
                owner,
                "--limit",
                "2",
                "--interval",
                "60000",
            ],
        );
        assert_eq!(code(&out), 0, "{out:?}");
        stdout(&out)
    };
    let a = acquire("a");
    let line = next();
    assert!(
        line.starts_with(&format!("held holders=1/2 token={a} owner=a ttl=")),
        "{line}"
    );
    let b = acquire("b");
    let line = next();
    assert!(
        line.starts_with(&format!("held holders=2/2 token={b} owner=")),
        "{line}"
    );
    hblock(&server, &["release", "w", "a", &a]);
    let line = next();
    assert!(line.starts_with("held holders=1/2 token="), "{line}");
    assert!(line.contains(" owner=b ttl="), "{line}");
    hblock(&server, &["release", "w", "b", &b]);
    let line = next();
    assert!(line.starts_with("free holders=0/2 token="), "{line}");
    let _ = child.kill();
    let _ = child.wait();
}

/// A bound holder of a LIMIT 2 lock whose connections are killed re-binds
/// (ACQUIRE ... BIND ... LIMIT 2, same token) and its child keeps running;
/// after `HBLOCK.LIMIT` changed the lock's limit it re-binds under the new
/// one instead of being refused.
#[test]
fn a_dropped_connection_of_a_limit_2_holder_is_re_bound_also_after_hblock_limit() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = server.conn();
    let a = Supervisor::start(&server, d, "a", &["--limit", "2"], HOLDER);
    let runs = eventually(Duration::from_secs(10), || read_pid(&d.join("a.pid")));
    let child = runs.unwrap_or_else(|| panic!("a runs\n{}", a.log()));
    let token = support::info_int(&mut c, default_key(), "token");
    for limit in [None, Some(3)] {
        if let Some(n) = limit {
            let now: i64 = redis::cmd("HBLOCK.LIMIT")
                .arg(default_key())
                .arg(n)
                .query(&mut c)
                .unwrap();
            assert_eq!(now, n);
        }
        let killed: i64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query(&mut c)
            .unwrap();
        assert!(killed >= 1);
        let bound = eventually(Duration::from_secs(5), || {
            (support::info_int(&mut c, default_key(), "bound") == 1).then_some(())
        });
        assert!(bound.is_some(), "re-bound (limit {limit:?})\n{}", a.log());
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            alive(child),
            "the child runs on (limit {limit:?})\n{}",
            a.log()
        );
        let holders: Vec<(String, i64)> = hblock_client::commands::holders(&mut c, default_key())
            .expect("HBLOCK.HOLDERS")
            .unwrap_or_default()
            .into_iter()
            .map(|h| (String::from_utf8_lossy(&h.owner).into_owned(), h.token))
            .collect();
        assert_eq!(holders.len(), 1, "{holders:?}");
        assert!(holders[0].0.starts_with("a/"), "{holders:?}");
        assert_eq!(holders[0].1, token, "same lease, same token");
    }
    assert!(!a.log().contains("lost"), "{}", a.log());
}
