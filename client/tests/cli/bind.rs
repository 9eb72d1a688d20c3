//! `hblock run` binds its lease (BIND 100 by default) to the connection it
//! beats on: kill -9 of the active supervisor hands over within the grace,
//! never with two children at once. (A dropped connection is re-bound:
//! faults.rs.)

use super::*;

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The supervisor whose owner holds the lock now (owners are `name/<hex>`).
fn holder_name(c: &mut redis::Connection) -> Option<String> {
    support::info(c, default_key())?;
    let owner = support::info_bytes(c, default_key(), "owner")?;
    let owner = String::from_utf8_lossy(&owner).into_owned();
    owner.split('/').next().map(str::to_string)
}

#[test]
fn kill_9_of_a_bound_supervisor_hands_over_within_the_grace() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    // Default terms: a 3 s lease, so only the binding can explain a fast takeover.
    let active = Supervisor::start(&server, dir.path(), "a", &[], TICKER);
    let ticking = eventually(Duration::from_secs(5), || {
        last_line_ns(&dir.path().join("a.ticks"))
    });
    assert!(ticking.is_some(), "a's child runs\n{}", active.log());
    let standby = Supervisor::start(&server, dir.path(), "b", &[], TICKER);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(5), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "b waits");
    assert_eq!(support::info_int(&mut c, default_key(), "bound"), 1);
    let killed = now_ns();
    active.signal(libc::SIGKILL);
    let b_start = eventually(Duration::from_secs(5), || {
        last_line_ns(&dir.path().join("b.start"))
    })
    .unwrap_or_else(|| panic!("b took over\n{}", standby.log()));
    let a_last = last_line_ns(&dir.path().join("a.ticks")).expect("a ticked");
    let took_ms = b_start.saturating_sub(killed) as f64 / 1e6;
    let margin_ms = (b_start as f64 - a_last as f64) / 1e6;
    eprintln!("kill -9 to the standby's child: {took_ms:.1} ms (grace 100 ms); a's last tick {margin_ms:.1} ms before");
    assert!(a_last < b_start, "a's child ticked after b's started");
    // Far inside the 3 s lease: the closed connection ended it.
    assert!(took_ms < 1500.0, "took {took_ms} ms");
    assert_eq!(support::counter(&mut c, "unbound"), 1);
}

/// One incarnation of a supervisor: its name (file prefix) and process.
struct Run {
    name: String,
    sup: Supervisor,
}

fn start_run(server: &Server, dir: &Path, base: &str, n: usize) -> Run {
    let name = format!("{base}{n}");
    let args = ["--owner", base];
    Run {
        sup: Supervisor::start(server, dir, &name, &args, TICKER),
        name,
    }
}

#[test]
fn three_bound_supervisors_kill_9_fifty_times_one_child_at_a_time() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = server.conn();
    let mut runs: Vec<Run> = ["a", "b", "c"]
        .iter()
        .map(|base| start_run(&server, dir.path(), base, 0))
        .collect();
    let mut took_ms = Vec::new();
    for round in 1..=50 {
        let holder = eventually(Duration::from_secs(5), || {
            let base = holder_name(&mut c)?;
            let queued = support::info_int(&mut c, default_key(), "waiters") == 2;
            let i = runs.iter().position(|r| r.name.starts_with(&base))?;
            // Its start time written, not just the file made: the shell
            // creates `.start` before `date` fills it.
            let started = last_line_ns(&dir.path().join(format!("{}.start", runs[i].name)));
            let started = started.is_some();
            (queued && started).then_some(i)
        })
        .unwrap_or_else(|| panic!("round {round}: one holder running, two waiting"));
        let killed = now_ns();
        runs[holder].sup.signal(libc::SIGKILL);
        let next = eventually(Duration::from_secs(5), || {
            runs.iter().enumerate().find_map(|(i, r)| {
                let start = last_line_ns(&dir.path().join(format!("{}.start", r.name)))?;
                (i != holder && start > killed).then_some(start)
            })
        })
        .unwrap_or_else(|| panic!("round {round}: nobody took over"));
        took_ms.push(next.saturating_sub(killed) as f64 / 1e6);
        let _ = runs[holder].sup.wait_exit(Duration::from_secs(5));
        let base = runs[holder].name[..1].to_string();
        runs[holder] = start_run(&server, dir.path(), &base, round);
    }
    drop(runs);
    check_one_child_at_a_time(dir.path());
    took_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| took_ms[((took_ms.len() - 1) as f64 * p) as usize];
    eprintln!(
        "kill -9 to the next child, 50 rounds: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (grace 100 ms)",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    assert_eq!(support::counter(&mut c, "unbound"), 50);
}

/// Every child's life (first to last tick) ends before the next one starts.
fn check_one_child_at_a_time(dir: &Path) {
    let mut lives: Vec<(u128, u128, String)> = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "start") {
            let ticks = path.with_extension("ticks");
            let Some(start) = last_line_ns(&path) else {
                // Killed (the test's end drops every supervisor) between the
                // shell making the file and `date` writing to it: it never ran.
                assert!(!ticks.exists(), "{} ticked without a start", path.display());
                continue;
            };
            let end = last_line_ns(&ticks).unwrap_or(start);
            lives.push((start, end, path.display().to_string()));
        }
    }
    lives.sort();
    assert!(lives.len() >= 51, "{} children ran", lives.len());
    for pair in lives.windows(2) {
        let ((_, end, a), (start, _, b)) = (&pair[0], &pair[1]);
        assert!(end < start, "{a} still ticked after {b} started");
    }
}
