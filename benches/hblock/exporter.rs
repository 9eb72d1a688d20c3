//! `hblock exporter` scraping 10,000 locks (2,000 with QUICK=1): how long a
//! scrape takes (an HTTP GET of /metrics, the exporter's own
//! hblock_scrape_duration_seconds beside it), and Redis's own latency
//! meanwhile: PING p99 during back-to-back scrapes, beside PING p99 with
//! nothing else running.

use crate::stats::{summary, Row};
use crate::support::Server;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// PING p99 (ms) while `work` runs.
fn ping_p99_while(server: &Server, work: impl FnOnce()) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let mut c = server.conn();
    let flag = stop.clone();
    let pinger = std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            let at = Instant::now();
            let _: String = redis::cmd("PING").query(&mut c).expect("PING");
            samples.push(at.elapsed().as_secs_f64() * 1e3);
        }
        samples
    });
    work();
    stop.store(true, Ordering::Relaxed);
    summary(pinger.join().expect("pinger")).1
}

/// GET /metrics: the body.
fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the exporter");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    reply
}

/// The exporter process, killed on drop (also when the bench panics).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(quick: bool) -> Vec<Row> {
    let locks: usize = if quick { 2_000 } else { 10_000 };
    let scrapes = if quick { 3 } else { 10 };
    let server = Server::start();
    let mut c = server.conn();
    let mut pipe = redis::pipe();
    for i in 0..locks {
        pipe.cmd("HBLOCK.ACQUIRE")
            .arg(format!("exp:{i:07}"))
            .arg(format!("owner-{i}"))
            .arg("INTERVAL")
            .arg(600_000)
            .ignore();
    }
    let _: () = pipe.query(&mut c).expect("ACQUIRE");
    let cli = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/hblock");
    let mut exporter = Running(
        Command::new(cli)
            .args([
                "--redis",
                &server.url(),
                "exporter",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("target/release/hblock (make build)"),
    );
    let mut line = String::new();
    if let Some(stderr) = exporter.0.stderr.take() {
        let _ = BufReader::new(stderr).read_line(&mut line);
    }
    let addr = line
        .split("http://")
        .nth(1)
        .map(|a| a.trim().trim_end_matches("/metrics").to_string())
        .expect("the exporter's address on stderr");
    let mut http = Vec::new();
    let mut redis_side = Vec::new();
    let during = ping_p99_while(&server, || {
        for _ in 0..scrapes {
            let started = Instant::now();
            let body = scrape(&addr);
            http.push(started.elapsed().as_secs_f64());
            let held = body.matches("hblock_lock_held{").count();
            assert_eq!(held, locks, "the scrape exported every lock");
            let own = body
                .lines()
                .find_map(|l| l.strip_prefix("hblock_scrape_duration_seconds "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .expect("hblock_scrape_duration_seconds");
            redis_side.push(own);
        }
    });
    drop(exporter);
    let idle = ping_p99_while(&server, || std::thread::sleep(Duration::from_secs(1)));
    let median = |v: Vec<f64>| summary(v).0;
    let n = if quick { "2,000" } else { "10,000" };
    vec![
        Row {
            name: format!("hblock exporter scrape (HTTP GET /metrics), {n} locks"),
            unit: "s",
            hblock: median(http),
            baseline_name: "its SCAN + INFO part (hblock_scrape_duration_seconds)".into(),
            baseline: median(redis_side),
            goal: None,
        },
        Row {
            name: format!("PING p99 during exporter scrapes, {n} locks"),
            unit: "ms",
            hblock: during,
            baseline_name: "PING p99, nothing else running".into(),
            baseline: idle,
            goal: None,
        },
    ]
}
