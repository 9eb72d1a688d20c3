//! The fault policy of `hblock run` with its defaults (1000 ms x 3): dropped
//! connections and a restarted Redis cost nothing inside the lease; two runs
//! given one `--owner` never share a lease; signals; help and error texts.

use super::*;

fn pid_of(dir: &Path, name: &str) -> i32 {
    wait_pid_file(&dir.join(format!("{name}.pid")), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{name}'s child never started"))
}

/// Every normal client but `c` itself.
fn kill_normal_clients(c: &mut redis::Connection) {
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(c)
        .expect("CLIENT KILL");
}

#[test]
fn two_runs_given_one_owner_never_run_two_children() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Supervisor::start_named(&server, dir.path(), "a", "web-1", &[], SLEEPER);
    let a_child = pid_of(dir.path(), "a");
    let b = Supervisor::start_named(&server, dir.path(), "b", "web-1", &[], SLEEPER);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "the second run waits\n{}", b.log());
    assert!(!dir.path().join("b.pid").exists(), "two children ran");
    let owner = support::info_bytes(&mut c, default_key(), "owner").expect("held");
    let owner = String::from_utf8_lossy(&owner).into_owned();
    assert!(owner.starts_with("web-1/") && owner.len() > 6, "{owner}");
    assert!(
        a.log().contains(&owner),
        "the log shows the owner\n{}",
        a.log()
    );
    a.signal(libc::SIGTERM);
    assert_eq!(
        a.wait_exit(Duration::from_secs(5)),
        Some(128 + libc::SIGTERM)
    );
    assert!(!alive(a_child));
    pid_of(dir.path(), "b");
}

#[test]
fn dropped_connections_leave_the_child_running_and_beats_resume() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let active = Supervisor::start(&server, dir.path(), "a", &[], SLEEPER);
    let child = pid_of(dir.path(), "a");
    let standby = Supervisor::start(&server, dir.path(), "b", &[], SLEEPER);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "b waits");
    let token = support::info_int(&mut c, default_key(), "token");
    for _ in 0..3 {
        let beats = support::info_int(&mut c, default_key(), "beats");
        kill_normal_clients(&mut c);
        let resumed = eventually(Duration::from_secs(5), || {
            (support::info_int(&mut c, default_key(), "beats") > beats + 1).then_some(())
        });
        assert!(resumed.is_some(), "beats resumed\n{}", active.log());
        let requeued = eventually(Duration::from_secs(5), || {
            (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
        });
        assert!(
            requeued.is_some(),
            "the standby waits again\n{}",
            standby.log()
        );
    }
    assert!(alive(child), "the child kept running\n{}", active.log());
    assert_eq!(support::info_int(&mut c, default_key(), "token"), token);
    // Bound (BIND 100) and re-bound after every drop: never released for it.
    assert_eq!(support::counter(&mut c, "unbound"), 0);
    assert_eq!(support::info_int(&mut c, default_key(), "bound"), 1);
    assert!(!dir.path().join("b.pid").exists());
    // The standby survived the drops and still takes over.
    active.signal(libc::SIGTERM);
    pid_of(dir.path(), "b");
}

#[test]
fn a_redis_restart_inside_the_lease_leaves_the_child_running() {
    let mut server = Server::with(
        support::Options::default()
            .config("appendonly", "yes")
            .config("appendfsync", "always"),
    );
    let dir = tempfile::tempdir().unwrap();
    let active = Supervisor::start(&server, dir.path(), "a", &[], SLEEPER);
    let child = pid_of(dir.path(), "a");
    let mut c = server.conn();
    let token = support::info_int(&mut c, default_key(), "token");
    server.crash_and_restart();
    let mut c = server.conn();
    let beats = support::info_int(&mut c, default_key(), "beats");
    let resumed = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "beats") > beats).then_some(())
    });
    assert!(resumed.is_some(), "beats resumed\n{}", active.log());
    assert!(alive(child), "the child kept running\n{}", active.log());
    assert_eq!(support::info_int(&mut c, default_key(), "token"), token);
    assert_eq!(support::state(&mut c, default_key()), "held");
}

#[test]
fn sighup_usr1_usr2_winch_reach_the_child_and_the_supervisor_stays() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let trap = "for s in HUP USR1 USR2 WINCH; do trap \"echo $s >> \\\"$DIR/got\\\"\" $s; done; echo $$ > \"$DIR/$NAME.pid\"; while :; do sleep 0.05; done";
    let mut sup = Supervisor::start(&server, dir.path(), "a", &[], trap);
    let child = pid_of(dir.path(), "a");
    let got = dir.path().join("got");
    for (sig, name) in [
        (libc::SIGHUP, "HUP"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGWINCH, "WINCH"),
    ] {
        sup.signal(sig);
        let seen = eventually(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&got).unwrap_or_default();
            text.lines().any(|l| l == name).then_some(())
        });
        assert!(
            seen.is_some(),
            "{name} did not reach the child\n{}",
            sup.log()
        );
    }
    assert!(alive(child) && alive(sup.pid()), "{}", sup.log());
    assert!(sup.log().contains("SIGHUP: passed to"), "{}", sup.log());
    let mut c = server.conn();
    assert_eq!(support::state(&mut c, default_key()), "held");
    sup.signal(libc::SIGQUIT);
    let code = sup.wait_exit(Duration::from_secs(5));
    assert!(code.is_some(), "SIGQUIT stops the run\n{}", sup.log());
    assert!(!alive(child));
    assert_eq!(support::state(&mut c, default_key()), "free", "released");
}

#[test]
fn no_wait_exits_1_at_once_and_timeout_after_its_time() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let _holder = Supervisor::start(&server, dir.path(), "h", &[], SLEEPER);
    pid_of(dir.path(), "h");
    let run = |extra: &[&str]| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
            .args(["--redis", &server.url(), "run", default_key()])
            .args(extra)
            .args(["--", "true"])
            .output()
            .expect("hblock run");
        (
            code(&out),
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code_now, took, log) = run(&["--no-wait"]);
    eprintln!("--no-wait on a held lock: {took:?}");
    assert_eq!(code_now, 1, "{log}");
    // A run that waited would never end (h holds the lock until the test
    // ends): 5 s tells the two apart on a busy host, where starting the
    // process alone can take a while.
    assert!(took < Duration::from_secs(5), "--no-wait waited {took:?}");
    assert!(log.contains("held by h/"), "who holds it: {log}");
    let (code_later, took, log) = run(&["--timeout", "300"]);
    assert_eq!(code_later, 1, "{log}");
    assert!(took >= Duration::from_millis(300), "gave up after {took:?}");
    let mut c = server.conn();
    assert_eq!(support::info_int(&mut c, default_key(), "waiters"), 0);
}

#[test]
fn help_hides_the_password_and_errors_give_a_handle() {
    let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .arg("--help")
        .env("HBLOCK_REDIS_URL", "redis://u:s3cret@127.0.0.1:1")
        .output()
        .expect("hblock --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        !help.contains("s3cret") && help.contains("HBLOCK_REDIS_URL"),
        "{help}"
    );
    let run_help = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["run", "--help"])
        .output()
        .expect("hblock run --help");
    let run_help = String::from_utf8_lossy(&run_help.stdout);
    for text in [
        "HBLOCK_KEY",
        "HBLOCK_OWNER",
        "HBLOCK_TOKEN",
        "Exit codes",
        "--no-wait",
        "--timeout",
    ] {
        assert!(run_help.contains(text), "run --help lacks {text}");
    }
    let bare = Server::with(support::Options::default().without_module());
    let out = hblock(&bare, &["acquire", "k", "--owner", "o"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3);
    assert!(
        stderr.contains("is the hblock module loaded? (loadmodule /path/to/libhblock.so)"),
        "{stderr}"
    );
    let mut c = bare.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let server = Server::start();
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("v")
        .query(&mut server.conn())
        .unwrap();
    let out = hblock(&server, &["info", "s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("hblock: s: {}: WRONGTYPE Operation", server.url())),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", "redis://u:s3cret@127.0.0.1:1", "info", "k"])
        .output()
        .expect("hblock info");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3);
    assert!(
        stderr.starts_with("hblock: k: redis://u:***@127.0.0.1:1: Connection refused")
            && !stderr.contains("s3cret"),
        "{stderr}"
    );
}

#[test]
fn every_catchable_ending_signal_stops_the_child_and_releases() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = server.conn();
    let signals = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGQUIT,
        libc::SIGALRM,
        libc::SIGSEGV,
        libc::SIGXCPU,
        libc::SIGRTMIN() + 1,
    ];
    for (i, sig) in signals.into_iter().enumerate() {
        let name = format!("s{i}");
        let mut sup = Supervisor::start(&server, dir.path(), &name, &[], SLEEPER);
        let child = pid_of(dir.path(), &name);
        sup.signal(sig);
        let code = sup.wait_exit(Duration::from_secs(5));
        assert!(
            code.is_some(),
            "signal {sig}: the supervisor kept running\n{}",
            sup.log()
        );
        assert_ne!(
            code,
            Some(-1),
            "signal {sig} killed the supervisor\n{}",
            sup.log()
        );
        assert!(!alive(child), "signal {sig}: the child survived");
        assert_eq!(
            support::state(&mut c, default_key()),
            "free",
            "signal {sig}: not released\n{}",
            sup.log()
        );
    }
}

#[test]
fn a_waiting_standby_ignores_sighup() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let holder = Supervisor::start(&server, dir.path(), "h", &[], SLEEPER);
    pid_of(dir.path(), "h");
    let standby = Supervisor::start(&server, dir.path(), "w", &[], SLEEPER);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some());
    standby.signal(libc::SIGHUP);
    let logged = eventually(Duration::from_secs(5), || {
        standby
            .log()
            .contains("SIGHUP while waiting: ignored")
            .then_some(())
    });
    assert!(logged.is_some(), "{}", standby.log());
    assert!(alive(standby.pid()));
    holder.signal(libc::SIGTERM);
    pid_of(dir.path(), "w");
}

/// Lines of `log` that start or end a failing condition.
fn condition_lines(log: &str) -> (Vec<&str>, Vec<&str>) {
    let failing = log.lines().filter(|l| l.contains(" failing: ")).collect();
    let recovered = log
        .lines()
        .filter(|l| l.contains(" recovered after "))
        .collect();
    (failing, recovered)
}

/// Issue #25: Redis down for 10 s, then back on the same port: a holder,
/// a standby and `hblock watch` each log the condition once when it starts
/// (`KEY: URL failing: ERROR; retrying`) and once when it ends (`KEY: URL
/// recovered after S s`), not once per retry.
#[test]
fn redis_down_for_10_s_is_logged_twice_per_process() {
    let mut server = Server::with(
        support::Options::default()
            .config("appendonly", "yes")
            .config("appendfsync", "always"),
    );
    let dir = tempfile::tempdir().unwrap();
    // A 20 s lease outlasts the outage: the holder's child keeps running.
    let long = ["--interval", "1000", "--misses", "20"];
    let holder = Supervisor::start(&server, dir.path(), "h", &long, SLEEPER);
    let child = pid_of(dir.path(), "h");
    let standby = Supervisor::start(&server, dir.path(), "s", &long, SLEEPER);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "s waits\n{}", standby.log());
    let watch_log = dir.path().join("watch.stderr");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", &server.url(), "watch", default_key()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&watch_log).unwrap())
        .spawn()
        .expect("hblock watch");
    let beats = support::info_int(&mut c, default_key(), "beats");
    server.stop();
    // The scenario: Redis away for 10 s (retries every <= 500 ms meanwhile).
    std::thread::sleep(Duration::from_secs(10));
    server.relaunch();
    let mut c = server.conn();
    let back = eventually(Duration::from_secs(10), || {
        let logs = [
            holder.log(),
            standby.log(),
            std::fs::read_to_string(&watch_log).ok()?,
        ];
        (logs.iter().all(|l| l.contains(" recovered after "))
            && support::info_int(&mut c, default_key(), "waiters") == 1
            && support::info_int(&mut c, default_key(), "beats") > beats)
            .then_some(())
    });
    let _ = watch.kill();
    let _ = watch.wait();
    let watch_text = std::fs::read_to_string(&watch_log).unwrap_or_default();
    assert!(
        back.is_some(),
        "all recovered\n{}\n{}\n{watch_text}",
        holder.log(),
        standby.log()
    );
    assert!(
        alive(child),
        "the holder's child kept running\n{}",
        holder.log()
    );
    let url = server.url();
    for (name, log) in [
        ("h", holder.log()),
        ("s", standby.log()),
        ("watch", watch_text),
    ] {
        let (failing, recovered) = condition_lines(&log);
        eprintln!("redis down 10 s: {name} logged {failing:?} {recovered:?}");
        assert_eq!((failing.len(), recovered.len()), (1, 1), "{name}:\n{log}");
        let start = format!("{}: {url} failing: ", default_key());
        assert!(
            failing[0].contains(&start) && failing[0].ends_with("; retrying"),
            "{name}: {log}"
        );
        let end = format!("{}: {url} recovered after ", default_key());
        let seconds: f64 = recovered[0]
            .split_once(&end)
            .and_then(|(_, rest)| rest.strip_suffix(" s"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {log}"));
        assert!(seconds >= 9.0, "{name}: the outage lasted 10 s: {seconds}");
        assert!(!log.contains("waiting again"), "{name}: {log}");
    }
}

/// Review finding M1: an AOF server stopped with SIGTERM (SHUTDOWN: it
/// closes the connections cleanly) and started again 5 s later. A beat
/// acknowledged just before the failure, looked at only after it, read as a
/// recovery (`recovered after 0.0 s`), then the overdue beat failed again:
/// four lines. A holder and a standby each log exactly one failing and one
/// recovered line.
#[test]
fn a_sigterm_restart_of_an_aof_server_is_logged_twice_per_process() {
    let mut server = Server::with(
        support::Options::default()
            .config("appendonly", "yes")
            .config("appendfsync", "always"),
    );
    let dir = tempfile::tempdir().unwrap();
    let long = ["--interval", "1000", "--misses", "30"];
    let holder = Supervisor::start(&server, dir.path(), "h", &long, SLEEPER);
    let child = pid_of(dir.path(), "h");
    let standby = Supervisor::start(&server, dir.path(), "s", &long, SLEEPER);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "s waits\n{}", standby.log());
    let beats = support::info_int(&mut c, default_key(), "beats");
    drop(c);
    let pid = server.pid().expect("running") as i32;
    // SAFETY: a signal to the test's own redis-server.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let down = eventually(Duration::from_secs(10), || (!server.alive()).then_some(()));
    assert!(down.is_some(), "redis-server ended on SIGTERM");
    std::thread::sleep(Duration::from_secs(5));
    server.relaunch();
    let mut c = server.conn();
    let back = eventually(Duration::from_secs(10), || {
        (holder.log().contains(" recovered after ")
            && standby.log().contains(" recovered after ")
            && support::info_int(&mut c, default_key(), "waiters") == 1
            && support::info_int(&mut c, default_key(), "beats") > beats)
            .then_some(())
    });
    assert!(
        back.is_some(),
        "both recovered\n{}\n{}",
        holder.log(),
        standby.log()
    );
    // A beat or retry more, to catch a line logged after the recovery.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        alive(child),
        "the holder's child kept running\n{}",
        holder.log()
    );
    for (name, log) in [("h", holder.log()), ("s", standby.log())] {
        let (failing, recovered) = condition_lines(&log);
        eprintln!("SIGTERM restart: {name} logged {failing:?} {recovered:?}");
        assert_eq!((failing.len(), recovered.len()), (1, 1), "{name}:\n{log}");
        let seconds: f64 = recovered[0]
            .rsplit_once(" recovered after ")
            .and_then(|(_, rest)| rest.strip_suffix(" s"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {log}"));
        assert!(
            seconds >= 4.0,
            "{name}: the outage lasted 5 s: {seconds}\n{log}"
        );
    }
}
