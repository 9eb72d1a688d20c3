//! `make bench` (failover part): how fast a waiting standby gets the lock.
//!
//! - release-to-grant latency as seen by the waiting client, with 1, 100 and
//!   10,000 clients waiting on one lock;
//! - expiry-to-grant latency: the waiter's reply time minus the lease deadline;
//! - memory and CPU of 10,000 blocked waiters.
//!
//! Starts its own redis-server on loopback (tests/support), prints a table and
//! writes target/bench/failover.json. `QUICK=1` takes fewer samples.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Options, Server};

/// One raw RESP connection: commands out, one-line replies in.
struct Raw {
    /// One socket (one fd: 10,000 of them must fit the fd limit), buffered for reading.
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
        }
        self.reader
            .get_mut()
            .write_all(out.as_bytes())
            .expect("write");
    }

    /// Reads a one-line reply (integer, nil, status or error).
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        line.trim_end().to_string()
    }

    fn int(&mut self) -> i64 {
        let line = self.line();
        line.strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("expected an integer, got {line:?}"))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    (
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        *samples.last().unwrap_or(&f64::NAN),
    )
}

fn waiters_on(c: &mut redis::Connection, key: &str) -> i64 {
    support::info_int(c, key, "waiters")
}

/// Spins (one INFO round trip at a time, no sleeping) until `n` clients wait.
fn wait_for(c: &mut redis::Connection, key: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while waiters_on(c, key) != n {
        assert!(Instant::now() < deadline, "{key}: never {n} waiters");
    }
}

/// used_memory added by `n` idle connections that each sent one command: the
/// Redis-side cost of a client, to tell apart from the cost of blocking.
fn idle_connections_memory(server: &Server, c: &mut redis::Connection, n: usize) -> f64 {
    let clients = info_number(c, "clients", "connected_clients");
    let before = info_number(c, "memory", "used_memory");
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut raw = Raw::connect(server.port);
        raw.send(&["PING"]);
        assert_eq!(raw.line(), "+PONG");
        conns.push(raw);
    }
    let after = info_number(c, "memory", "used_memory");
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_number(c, "clients", "connected_clients") > clients {
        assert!(Instant::now() < deadline, "idle connections did not close");
        std::thread::sleep(Duration::from_millis(10));
    }
    (after - before) / n as f64
}

fn info_number(c: &mut redis::Connection, section: &str, field: &str) -> f64 {
    let info: String = redis::cmd("INFO").arg(section).query(c).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

struct Queue {
    key: String,
    control: Raw,
    /// Waiting connections in arrival order, with the owner each waits as.
    waiting: std::collections::VecDeque<(Raw, String)>,
    holder: (String, i64),
}

/// Sets up `n` waiters on one lock, each queued only after the previous one is
/// (so the head of the queue is known).
fn queue_of(server: &Server, c: &mut redis::Connection, key: &str, n: usize) -> Queue {
    let mut control = Raw::connect(server.port);
    control.send(&["HBLOCK.ACQUIRE", key, "holder", "INTERVAL", "600000"]);
    let token = control.int();
    let mut waiting = std::collections::VecDeque::new();
    for i in 0..n {
        let mut raw = Raw::connect(server.port);
        let owner = format!("w{i}");
        raw.send(&[
            "HBLOCK.ACQUIRE",
            key,
            &owner,
            "INTERVAL",
            "600000",
            "WAIT",
            "0",
        ]);
        wait_for(c, key, i as i64 + 1);
        waiting.push_back((raw, owner));
    }
    Queue {
        key: key.to_string(),
        control,
        waiting,
        holder: ("holder".into(), token),
    }
}

/// Release by the holder, timed until the head of the queue reads its token;
/// the head then queues again at the back under a new owner name.
fn release_to_grant(q: &mut Queue, c: &mut redis::Connection, rounds: usize) -> Vec<f64> {
    let n = q.waiting.len() as i64;
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (mut head, owner) = q.waiting.pop_front().expect("a waiter");
        let (holder, token) = q.holder.clone();
        let start = Instant::now();
        q.control
            .send(&["HBLOCK.RELEASE", &q.key, &holder, &token.to_string()]);
        let granted = head.int();
        let elapsed = start.elapsed();
        assert_eq!(q.control.int(), 1, "release");
        assert_eq!(
            granted,
            token + 1,
            "the head of the queue got the next token"
        );
        samples.push(elapsed.as_secs_f64() * 1e3);
        q.holder = (owner.clone(), granted);
        let base = owner.split('.').next().unwrap_or("w");
        let again = format!("{base}.{round}");
        head.send(&[
            "HBLOCK.ACQUIRE",
            &q.key,
            &again,
            "INTERVAL",
            "600000",
            "WAIT",
            "0",
        ]);
        wait_for(c, &q.key, n);
        q.waiting.push_back((head, again));
    }
    samples
}

/// Lease deadline to the waiter's reply, estimated from the client side: the
/// deadline is the midpoint of the holder's ACQUIRE round trip + the lease.
fn expiry_to_grant(server: &Server, samples: usize, lease_ms: u64) -> Vec<f64> {
    let mut control = Raw::connect(server.port);
    let mut waiter = Raw::connect(server.port);
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let key = format!("exp:{i}");
        let before = Instant::now();
        control.send(&[
            "HBLOCK.ACQUIRE",
            &key,
            "dead",
            "INTERVAL",
            &lease_ms.to_string(),
            "MISSES",
            "1",
        ]);
        assert_eq!(control.int(), 1);
        let after = Instant::now();
        waiter.send(&["HBLOCK.ACQUIRE", &key, "standby", "WAIT", "0"]);
        assert_eq!(waiter.int(), 2, "the standby takes over");
        let replied = Instant::now();
        let granted_at = before + (after - before) / 2 + Duration::from_millis(lease_ms);
        let late = if replied >= granted_at {
            (replied - granted_at).as_secs_f64()
        } else {
            -(granted_at - replied).as_secs_f64()
        };
        out.push(late * 1e3);
    }
    out
}

fn main() {
    let quick = std::env::var("QUICK").is_ok_and(|v| v == "1");
    let rounds = if quick { 50 } else { 300 };
    let big = if quick { 2_000 } else { 10_000 };
    let server = Server::with(Options::default().config("maxclients", "12000"));
    let mut c = server.conn();
    let version = {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut c)
            .expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_string()
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "hblock failover bench: redis {version}, {cpus} CPUs, loopback, {}",
        if quick { "QUICK" } else { "full" }
    );

    let mut rows = Vec::new();
    for n in [1usize, 100, big] {
        let key = format!("lock:{n}");
        let per_connection = if n == big {
            idle_connections_memory(&server, &mut c, n)
        } else {
            0.0
        };
        let mem_before = info_number(&mut c, "memory", "used_memory");
        let setup = Instant::now();
        let mut q = queue_of(&server, &mut c, &key, n);
        let setup = setup.elapsed();
        let mem_after = info_number(&mut c, "memory", "used_memory");
        if n == big {
            let cpu = |c: &mut redis::Connection| {
                info_number(c, "cpu", "used_cpu_sys") + info_number(c, "cpu", "used_cpu_user")
            };
            let (cpu0, t0) = (cpu(&mut c), Instant::now());
            std::thread::sleep(Duration::from_secs(2));
            let idle_cpu = (cpu(&mut c) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
            let per_waiter = (mem_after - mem_before) / n as f64;
            println!(
                "{n} blocked waiters: used_memory +{:.1} MiB = {per_waiter:.0} bytes each, of which an idle Redis connection is {per_connection:.0} and blocking adds {:.0}; server CPU while they wait: {idle_cpu:.1}% of one core; queued in {setup:.1?}",
                (mem_after - mem_before) / 1048576.0,
                per_waiter - per_connection,
            );
            rows.push(format!(
                "{{\"row\":\"waiters_idle\",\"waiters\":{n},\"used_memory_bytes\":{:.0},\"bytes_per_waiter\":{per_waiter:.0},\"bytes_per_idle_connection\":{per_connection:.0},\"idle_cpu_percent\":{idle_cpu:.2}}}",
                mem_after - mem_before
            ));
        }
        let (p50, p99, max) = summary(release_to_grant(&mut q, &mut c, rounds));
        println!("release-to-grant, {n:>5} waiters: p50 {p50:.3} ms  p99 {p99:.3} ms  max {max:.3} ms  ({rounds} hand-offs)");
        rows.push(format!(
            "{{\"row\":\"release_to_grant\",\"waiters\":{n},\"p50_ms\":{p50:.4},\"p99_ms\":{p99:.4},\"max_ms\":{max:.4},\"samples\":{rounds}}}"
        ));
        drop(q);
        wait_for(&mut c, &key, 0);
    }
    let lease_ms = 20;
    let samples = if quick { 30 } else { 150 };
    let (p50, p99, max) = summary(expiry_to_grant(&server, samples, lease_ms));
    println!("expiry-to-grant (reply minus deadline, {lease_ms} ms leases): p50 {p50:.3} ms  p99 {p99:.3} ms  max {max:.3} ms  ({samples} takeovers)");
    rows.push(format!(
        "{{\"row\":\"expiry_to_grant\",\"lease_ms\":{lease_ms},\"p50_ms\":{p50:.4},\"p99_ms\":{p99:.4},\"max_ms\":{max:.4},\"samples\":{samples}}}"
    ));

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let json = format!(
        "{{\"bench\":\"failover\",\"redis_version\":\"{version}\",\"cpus\":{cpus},\"quick\":{quick},\"rows\":[\n  {}\n]}}\n",
        rows.join(",\n  ")
    );
    std::fs::write(dir.join("failover.json"), json).expect("write json");
    println!("written: target/bench/failover.json");
}
