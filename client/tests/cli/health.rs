//! `hblock run --check`: a hung child fails its check and is replaced by the
//! standby's; a check that times out is killed; failing and recovery are
//! logged once each.

use super::*;

/// Writes its pid and start time, then every 100 ms a heartbeat file (its
/// time in ns, replaced atomically) and a tick line.
const BEATING: &str = "echo $$ > \"$DIR/$NAME.pid\"; date +%s%N > \"$DIR/$NAME.start\"; \
    while :; do date +%s%N > \"$DIR/$NAME.beat.tmp\"; mv \"$DIR/$NAME.beat.tmp\" \"$DIR/$NAME.beat\"; \
    date +%s%N >> \"$DIR/$NAME.ticks\"; sleep 0.1; done";

/// Passes while the child's heartbeat file is younger than 1 s.
const FRESH: &str = "b=$(cat \"$DIR/$NAME.beat\") && [ $(( $(date +%s%N) - b )) -lt 1000000000 ]";

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn a_hung_child_fails_its_check_and_the_standby_takes_over_with_exit_5() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (every, failures, grace) = (100, 3, 300);
    let (every_arg, failures_arg, grace_arg) =
        (every.to_string(), failures.to_string(), grace.to_string());
    let terms = [
        "--interval",
        "100",
        "--misses",
        "3",
        "--grace",
        &grace_arg,
        "--check",
        FRESH,
        "--check-every",
        &every_arg,
        "--check-failures",
        &failures_arg,
    ];
    let mut active = Supervisor::start(&server, dir.path(), "a", &terms, BEATING);
    let a_child =
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("a's child");
    let standby = Supervisor::start(&server, dir.path(), "b", &terms, BEATING);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "b waits\n{}", standby.log());
    // Its checks pass while it beats: ten ticks (a second, ten checks).
    let ticks = || {
        std::fs::read_to_string(dir.path().join("a.ticks"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(eventually(Duration::from_secs(10), || (ticks() >= 10).then_some(())).is_some());
    assert_eq!(count(&active.log(), "health check"), 0, "{}", active.log());

    // SAFETY: kill(2) on the child of a supervisor this test started.
    unsafe {
        libc::kill(a_child, libc::SIGSTOP);
    }
    let stopped = Instant::now();
    let b_start = eventually(Duration::from_secs(10), || {
        last_line_ns(&dir.path().join("b.start"))
    })
    .expect("b's child started");
    let took = stopped.elapsed();
    assert!(
        !alive(a_child),
        "a's stopped child still there when b's child started"
    );
    let a_last = last_line_ns(&dir.path().join("a.ticks")).expect("a ticked");
    assert!(a_last < b_start, "two children at once");
    // The heartbeat goes stale after 1 s, then `failures` checks `every` ms
    // apart fail (each within its 100 ms timeout), then SIGTERM (held while
    // stopped) and SIGKILL after the grace; 1 s of slack for a loaded machine.
    let bound = Duration::from_millis(1000 + failures * every + 100 + grace + 1000);
    eprintln!("SIGSTOP of a's child to b's child start: {took:?} (bound {bound:?})");
    assert!(took < bound, "b's child started {took:?} after the stop");
    assert_eq!(
        active.wait_exit(Duration::from_secs(5)),
        Some(5),
        "exit 5: stopped by the health check\n{}",
        active.log()
    );
    let log = active.log();
    assert_eq!(count(&log, "job: health check failing: "), 1, "{log}");
    assert_eq!(
        count(&log, "unhealthy job: health check failed 3 times in a row"),
        1,
        "{log}"
    );
    assert!(log.contains("released job token=1"), "{log}");
    assert!(alive(read_pid(&dir.path().join("b.pid")).expect("b's pid")));
}

#[test]
fn a_check_that_times_out_is_killed_and_failing_and_recovery_are_logged_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // While $DIR/sick exists the check hangs (and must be killed at its
    // 100 ms timeout); each check appends its pid.
    let check = "echo $$ >> \"$DIR/checks\"; test ! -e \"$DIR/sick\" || exec sleep 30";
    let terms = [
        "--interval",
        "100",
        "--check",
        check,
        "--check-every",
        "50",
        "--check-timeout",
        "100",
        "--check-failures",
        "1000",
    ];
    let mut sup = Supervisor::start(&server, dir.path(), "a", &terms, SLEEPER);
    let child = wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("child");
    let checks = dir.path().join("checks");
    let pids = || -> Vec<i32> {
        std::fs::read_to_string(&checks)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    assert!(eventually(Duration::from_secs(5), || (pids().len() >= 2).then_some(())).is_some());
    std::fs::write(dir.path().join("sick"), "").unwrap();
    let sick_from = pids().len();
    let timed_out = eventually(Duration::from_secs(10), || {
        (pids().len() >= sick_from + 4 && sup.log().contains("timed out after 100 ms"))
            .then_some(())
    });
    assert!(
        timed_out.is_some(),
        "checks ran and timed out\n{}",
        sup.log()
    );
    std::fs::remove_file(dir.path().join("sick")).unwrap();
    let recovered = eventually(Duration::from_secs(5), || {
        sup.log()
            .contains("job: health check recovered after ")
            .then_some(())
    });
    assert!(recovered.is_some(), "{}", sup.log());
    // Every check that hung was killed with its group, not left running.
    let all_dead = eventually(Duration::from_secs(3), || {
        pids().iter().all(|p| !alive(*p)).then_some(())
    });
    assert!(
        all_dead.is_some(),
        "checks left running: {:?}",
        pids().into_iter().filter(|p| alive(*p)).collect::<Vec<_>>()
    );
    let log = sup.log();
    assert_eq!(
        count(
            &log,
            "job: health check failing: timed out after 100 ms; the command is stopped after 1000 failures in a row"
        ),
        1,
        "{log}"
    );
    assert_eq!(count(&log, "health check"), 2, "{log}");
    assert!(alive(child), "the child kept running");
    let mut c = server.conn();
    assert_eq!(support::state(&mut c, default_key()), "held");
    sup.signal(libc::SIGTERM);
    assert_eq!(
        sup.wait_exit(Duration::from_secs(5)),
        Some(128 + libc::SIGTERM),
        "a signal's stop is not the check's: the child's status\n{}",
        sup.log()
    );
}

#[test]
fn check_options_without_check_are_usage_errors() {
    let server = Server::start();
    for args in [
        &["run", "job", "--check-every", "100", "--", "true"][..],
        &[
            "run",
            "job",
            "--check",
            "true",
            "--check-failures",
            "0",
            "--",
            "true",
        ][..],
        &[
            "run",
            "job",
            "--check",
            "true",
            "--check-timeout",
            "x",
            "--",
            "true",
        ][..],
    ] {
        let out = hblock(&server, args);
        assert_eq!(
            code(&out),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let help = hblock(&server, &["run", "--help"]);
    let text = stdout(&help);
    for needle in [
        "--check <CMD>",
        "--check-every",
        "--check-timeout",
        "--check-failures",
        "5 ",
    ] {
        assert!(text.contains(needle), "run --help lacks {needle}:\n{text}");
    }
}
