//! `hblock run`: one child at a time, kill -9 of a supervisor, a paused
//! supervisor, Redis going away, the child's exit status, signals.

use super::*;

#[test]
fn three_supervisors_run_one_child_at_a_time_and_hand_over_at_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("timeline");
    let child = format!(
        "echo start $HBLOCK_TOKEN $(date +%s%N) >> {0}; sleep 0.3; echo stop $HBLOCK_TOKEN $(date +%s%N) >> {0}",
        log.display()
    );
    // A 1 s interval: a standby that polled would start up to 1 s late, so
    // the gap bound below tells "at once" from polling with room for a
    // busy host (two process starts and a grant inside it).
    let mut sups: Vec<Supervisor> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| Supervisor::start(&server, dir.path(), name, &["--interval", "1000"], &child))
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
            gap < 900.0,
            "standby child started {gap} ms after the previous one stopped"
        );
    }
}

#[test]
fn kill_9_of_the_supervisor_kills_its_child_and_a_standby_takes_over() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // A 3 s lease: the standby's child starting well inside it proves the
    // killed supervisor's closed connection released it (BIND grace 100 ms),
    // not the lease's end; and a busy host does not make a lose it first.
    let terms = ["--interval", "1000", "--misses", "3"];
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
        "kill -9 to the standby's child: {took:?} (lease 3 s, grace 100 ms)\n{}",
        _standby.log()
    );
    // The lease's end comes no earlier than 2 s after the kill (its last
    // beat was at most one 1 s interval before it).
    assert!(took < Duration::from_millis(1900), "standby took {took:?}");
    assert!(alive(b_child));
}

#[test]
fn a_stopped_supervisors_child_is_killed_before_the_standbys_child_starts() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let terms = ["--interval", "100", "--misses", "3", "--grace", "1000"]; // 300 ms lease
    let mut active = Supervisor::start(&server, dir.path(), "a", &terms, TICKER);
    assert!(eventually(Duration::from_secs(5), || last_line_ns(
        &dir.path().join("a.ticks")
    ))
    .is_some());
    let _standby = Supervisor::start(&server, dir.path(), "b", &terms, TICKER);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "b waits");
    active.signal(libc::SIGSTOP);
    let b_start = eventually(Duration::from_secs(5), || {
        last_line_ns(&dir.path().join("b.start"))
    })
    .expect("b took over");
    let a_last = last_line_ns(&dir.path().join("a.ticks")).expect("a ticked");
    eprintln!(
        "a's last tick {:.1} ms before b's child started",
        (b_start as f64 - a_last as f64) / 1e6
    );
    assert!(
        a_last < b_start,
        "the stopped supervisor's child outlived its lease"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        last_line_ns(&dir.path().join("a.ticks")),
        Some(a_last),
        "a's child is dead, not paused"
    );
    active.signal(libc::SIGCONT);
    assert_eq!(
        active.wait_exit(Duration::from_secs(5)),
        Some(4),
        "lost-the-lease exit code\n{}",
        active.log()
    );
    assert!(active.log().contains("watchdog:"), "{}", active.log());
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

/// Records the SIGTERM it gets (ns since the epoch) and exits 0 at once.
const TERM_RECORDER: &str = "trap 'date +%s%N > \"$DIR/$NAME.term\"; exit 0' TERM; echo $$ > \"$DIR/$NAME.pid\"; while :; do sleep 0.02; done";

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Issue #24: a server that hangs (SIGSTOP: the socket stays open, no reply
/// comes) is a failed beat on the supervisor's own clock, not after the
/// heartbeat's read gives up: the child gets SIGTERM before the lease can
/// end (counted from the last beat the server answered, which was sent
/// before the stop), exits on it, and no SIGKILL is needed.
#[test]
fn a_hung_server_gets_the_child_sigterm_before_the_lease_ends() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // 900 ms lease; a beat's read may block 600 ms, and a new connection's
    // hello as long again: later than the lease's end.
    let terms = ["--interval", "300", "--misses", "3"];
    let lease = Duration::from_millis(900);
    let mut active = Supervisor::start(&server, dir.path(), "a", &terms, TERM_RECORDER);
    let child =
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(5)).expect("a's child");
    let mut c = server.conn();
    let beating = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "beats") >= 2).then_some(())
    });
    assert!(beating.is_some(), "the supervisor never beat");
    let pid = server.pid().expect("the server runs") as i32;
    let stopped_ns = now_ns();
    // SAFETY: kill(2) on the server this test started.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let code = active.wait_exit(Duration::from_secs(10));
    // SAFETY: as above; the server goes on (and is killed on drop).
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    let term_ns = std::fs::read_to_string(dir.path().join("a.term"))
        .ok()
        .and_then(|t| t.trim().parse::<u128>().ok())
        .unwrap_or_else(|| panic!("the child never got SIGTERM\n{}", active.log()));
    let after = Duration::from_nanos(term_ns.saturating_sub(stopped_ns) as u64);
    eprintln!("server hung: SIGTERM reached the child {after:?} after the stop (lease {lease:?})");
    assert!(
        after < lease,
        "SIGTERM {after:?} after the stop\n{}",
        active.log()
    );
    assert!(!alive(child));
    let log = active.log();
    assert!(
        !log.contains("SIGKILL") && !log.contains("watchdog:"),
        "a child that exits on SIGTERM needs no SIGKILL\n{log}"
    );
    assert!(log.contains("stopping"), "{log}");
    assert_eq!(code, Some(4), "the lease counts as lost\n{log}");
}
