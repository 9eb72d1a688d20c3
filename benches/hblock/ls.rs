//! `hblock ls` of 100,000 locks (10,000 with QUICK=1): how long the CLI
//! takes, beside a bare `SCAN ... TYPE hblock-lk` pass over the same keys
//! (the names only, no INFO); and Redis's own latency meanwhile: PING p99
//! during the listing, beside PING p99 with nothing else running.

use crate::stats::{summary, Row};
use crate::support::Server;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// PING round trips (ms) until `stop` is set.
fn pings(server: &Server, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f64>> {
    let mut c = server.conn();
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            let _: String = redis::cmd("PING").query(&mut c).expect("PING");
            samples.push(at.elapsed().as_secs_f64() * 1e3);
        }
        samples
    })
}

fn ping_p99_while(server: &Server, work: impl FnOnce()) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = pings(server, stop.clone());
    work();
    stop.store(true, Ordering::Relaxed);
    summary(pinger.join().expect("pinger")).1
}

pub fn run(quick: bool) -> Vec<Row> {
    let locks: usize = if quick { 10_000 } else { 100_000 };
    let server = Server::start();
    let mut c = server.conn();
    for start in (0..locks).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 10_000).min(locks) {
            pipe.cmd("HBLOCK.ACQUIRE")
                .arg(format!("ls:{i:07}"))
                .arg("o")
                .arg("INTERVAL")
                .arg(600_000)
                .ignore();
        }
        let _: () = pipe.query(&mut c).expect("ACQUIRE");
    }
    let cli = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/hblock");
    let mut ls_secs = 0.0;
    let during = ping_p99_while(&server, || {
        let started = Instant::now();
        let status = Command::new(cli)
            .args(["--redis", &server.url(), "ls", "--json"])
            .stdout(Stdio::null())
            .status()
            .expect("target/release/hblock (make build)");
        ls_secs = started.elapsed().as_secs_f64();
        assert!(status.success(), "hblock ls failed");
    });
    let mut scan_secs = 0.0;
    let _ = ping_p99_while(&server, || {
        let started = Instant::now();
        let mut cursor: u64 = 0;
        let mut found = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg(&["COUNT", "1000", "TYPE", "hblock-lk"])
                .query(&mut c)
                .expect("SCAN");
            found += keys.len();
            if next == 0 {
                break;
            }
            cursor = next;
        }
        scan_secs = started.elapsed().as_secs_f64();
        assert!(found >= locks, "SCAN found {found} of {locks}");
    });
    let idle = ping_p99_while(&server, || {
        std::thread::sleep(Duration::from_secs_f64(ls_secs.clamp(0.2, 2.0)))
    });
    let n = if quick { "10,000" } else { "100,000" };
    vec![
        Row {
            name: format!("hblock ls --json, {n} locks"),
            unit: "s",
            hblock: ls_secs,
            baseline_name: "SCAN TYPE hblock-lk alone (names only)".into(),
            baseline: scan_secs,
            goal: Some(("< 10 s".into(), ls_secs < 10.0)),
        },
        Row {
            name: format!("PING p99 during hblock ls, {n} locks"),
            unit: "ms",
            hblock: during,
            baseline_name: "PING p99, nothing else running".into(),
            baseline: idle,
            goal: None,
        },
    ]
}
