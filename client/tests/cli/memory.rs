//! A minute of real clients against one server: `hblock run` (beating every
//! 50 ms, with HBLOCK.WATCH ... TIMEOUT between beats) and a standby waiting
//! in the queue, a Python `Lease` acquired and released over and over, and
//! `hblock watch` following it. `used_memory` must stay flat: within 1 MB
//! of where it was after a warm-up, with as many clients connected. (Every
//! WATCH that ended by its TIMEOUT used to leak ~34 KB on Redis 7.0: about
//! 50 MB a minute here.) HBLOCK_FLAT_SECS shortens or lengthens the minute.

use super::*;

const SLACK: i64 = 1 << 20;

/// Acquires and releases a `Lease` on `py` until the time is up; prints how
/// many times.
const LEASE_LOOP: &str = r#"
import sys, time
import redis, hblock
port, secs = int(sys.argv[1]), float(sys.argv[2])
client = redis.Redis(port=port, protocol=2)
end, cycles = time.monotonic() + secs, 0
while time.monotonic() < end:
    with hblock.Lease(client, "py", owner="py", interval_ms=50, misses=3):
        time.sleep(0.3)
    cycles += 1
    time.sleep(0.05)
print("cycles", cycles, flush=True)
"#;

fn info_int(c: &mut redis::Connection, section: &str, field: &str) -> i64 {
    support::info_field(c, section, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO {section}: no {field}"))
}

/// `used_memory` at a moment when `clients` clients are connected (the
/// Python lease connects and disconnects as it cycles).
fn used_memory_with(c: &mut redis::Connection, clients: i64) -> i64 {
    eventually(Duration::from_secs(10), || {
        let before = info_int(c, "clients", "connected_clients");
        let used = info_int(c, "memory", "used_memory");
        let after = info_int(c, "clients", "connected_clients");
        (before == clients && after == clients).then_some(used)
    })
    .unwrap_or_else(|| panic!("never {clients} clients connected"))
}

/// A process this test started, killed and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_minute_of_run_lease_and_watch_keeps_used_memory_flat() {
    let secs: u64 = std::env::var("HBLOCK_FLAT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let warm_up = Duration::from_secs(5);
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = server.conn();
    let terms = ["--interval", "50"];
    let sleeper = "echo $$ > \"$DIR/$NAME.pid\"; exec sleep 600";
    let active = Supervisor::start(&server, dir.path(), "a", &terms, sleeper);
    assert!(
        wait_pid_file(&dir.path().join("a.pid"), Duration::from_secs(10)).is_some(),
        "a's child runs\n{}",
        active.log()
    );
    let standby = Supervisor::start(&server, dir.path(), "b", &terms, sleeper);
    let queued = eventually(Duration::from_secs(10), || {
        (support::info_int(&mut c, default_key(), "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "b waits\n{}", standby.log());
    let python_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/src");
    let lease_secs = warm_up + Duration::from_secs(secs);
    let leases = Reaped(
        Command::new(python())
            .args(["-c", LEASE_LOOP, &server.port.to_string()])
            .arg(lease_secs.as_secs_f64().to_string())
            .env("PYTHONPATH", &python_src)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python"),
    );
    let watch_out = dir.path().join("watch.out");
    let _watch = Reaped(
        Command::new(env!("CARGO_BIN_EXE_hblock"))
            .args(["--redis", &server.url(), "watch", "py"])
            .stdout(std::fs::File::create(&watch_out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("hblock watch"),
    );
    std::thread::sleep(warm_up);

    let clients = info_int(&mut c, "clients", "connected_clients");
    let start = used_memory_with(&mut c, clients);
    let began = Instant::now();
    let mut highest = start;
    while began.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(5).min(Duration::from_secs(secs)));
        let used = info_int(&mut c, "memory", "used_memory");
        highest = highest.max(used);
        eprintln!(
            "after {:>4.1?}: used_memory {used} ({:+} bytes)",
            began.elapsed(),
            used - start
        );
    }
    let end = used_memory_with(&mut c, clients);
    eprintln!("used_memory over {secs} s: {start} -> {end} ({:+} bytes; highest {highest}) with {clients} clients", end - start);

    let mut leases = leases;
    let out = leases.0.stdout.take();
    let status = eventually(Duration::from_secs(10), || {
        leases.0.try_wait().ok().flatten()
    })
    .expect("the Python loop ends");
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut out.expect("stdout"), &mut printed).unwrap();
    assert!(status.success(), "python: {status:?} {printed}");
    let cycles: usize = printed
        .trim()
        .strip_prefix("cycles ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("python printed {printed:?}"));
    let changes = std::fs::read_to_string(&watch_out).unwrap().lines().count();
    eprintln!("{cycles} Python leases, {changes} changes seen by hblock watch");
    assert!(
        cycles > 0 && changes >= cycles,
        "{cycles} leases, {changes} changes"
    );
    assert!(
        end - start <= SLACK,
        "used_memory grew {} bytes in {secs} s",
        end - start
    );
    assert_eq!(
        support::info_bytes(&mut c, default_key(), "owner").map(|o| o.starts_with(b"a/")),
        Some(true),
        "a held its lease throughout\n{}",
        active.log()
    );
}
