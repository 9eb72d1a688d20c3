//! Failover latency: release-to-grant with 1, 100 and 10,000 waiters on one
//! lock; lease-deadline-to-grant; memory and CPU of 10,000 idle waiters.

use crate::stats::{info_number, summary, wait_for_waiters, Row};
use crate::support::raw::Raw;
use crate::support::Server;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

struct Queue {
    key: String,
    control: Raw,
    /// Waiting connections in arrival order, with the owner each waits as.
    waiting: VecDeque<(Raw, String)>,
    holder: (String, i64),
}

/// `n` waiters on one lock, each queued only after the previous one is (so
/// the head of the queue is known).
fn queue_of(server: &Server, c: &mut redis::Connection, key: &str, n: usize) -> Queue {
    let mut control = Raw::connect(server.port);
    control.send(&["HBLOCK.ACQUIRE", key, "holder", "INTERVAL", "600000"]);
    let token = control.int();
    let mut waiting = VecDeque::new();
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
        wait_for_waiters(c, key, i as i64 + 1);
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
        assert!(granted > token, "the head of the queue got a newer token");
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
        wait_for_waiters(c, &q.key, n);
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
        let token = control.int();
        let after = Instant::now();
        waiter.send(&["HBLOCK.ACQUIRE", &key, "standby", "WAIT", "0"]);
        assert!(waiter.int() > token, "the standby takes over");
        let replied = Instant::now();
        let deadline = before + (after - before) / 2 + Duration::from_millis(lease_ms);
        let late = if replied >= deadline {
            (replied - deadline).as_secs_f64()
        } else {
            -(deadline - replied).as_secs_f64()
        };
        out.push(late * 1e3);
    }
    out
}

/// used_memory added by `n` idle connections that each sent one command: the
/// Redis-side cost of a client, to tell apart from the cost of blocking.
fn idle_connections_memory(server: &Server, c: &mut redis::Connection, n: usize) -> f64 {
    let clients = info_number(c, "clients", "connected_clients");
    let before = info_number(c, "memory", "used_memory");
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut raw = Raw::connect(server.port);
        assert_eq!(raw.call(&["PING"]), "+PONG");
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

pub fn latency_row(name: String, (p50, p99, _max): (f64, f64, f64), goal_p99: f64) -> Vec<Row> {
    vec![
        Row {
            name: format!("{name}, p50"),
            unit: "ms",
            hblock: p50,
            baseline_name: String::new(),
            baseline: f64::NAN,
            goal: None,
        },
        Row {
            name: format!("{name}, p99"),
            unit: "ms",
            hblock: p99,
            baseline_name: String::new(),
            baseline: f64::NAN,
            goal: Some((format!("p99 < {goal_p99} ms"), p99 < goal_p99)),
        },
    ]
}

pub fn run(server: &Server, quick: bool) -> Vec<Row> {
    let mut c = server.conn();
    let rounds = if quick { 50 } else { 300 };
    let big = if quick { 2_000 } else { 10_000 };
    let mut rows = Vec::new();
    for n in [1usize, 100, big] {
        let key = format!("lock:{n}");
        let per_connection = if n == big {
            idle_connections_memory(server, &mut c, n)
        } else {
            0.0
        };
        let mem_before = info_number(&mut c, "memory", "used_memory");
        let mut q = queue_of(server, &mut c, &key, n);
        let mem_after = info_number(&mut c, "memory", "used_memory");
        if n == big {
            let cpu = |c: &mut redis::Connection| {
                info_number(c, "cpu", "used_cpu_sys") + info_number(c, "cpu", "used_cpu_user")
            };
            let (cpu0, t0) = (cpu(&mut c), Instant::now());
            std::thread::sleep(Duration::from_secs(2));
            let idle_cpu = (cpu(&mut c) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
            let per_waiter = (mem_after - mem_before) / n as f64;
            rows.push(Row {
                name: format!("{n} idle waiters: server CPU"),
                unit: "% core",
                hblock: idle_cpu,
                baseline_name: String::new(),
                baseline: f64::NAN,
                goal: None,
            });
            rows.push(Row {
                name: format!("{n} idle waiters: memory per waiter"),
                unit: "bytes",
                hblock: per_waiter,
                baseline_name: "idle connection".into(),
                baseline: per_connection,
                goal: None,
            });
        }
        let samples = release_to_grant(&mut q, &mut c, rounds);
        let goal = if n == 1 { 1.0 } else { 5.0 };
        rows.extend(latency_row(
            format!("release to grant, {n} waiters"),
            summary(samples),
            goal,
        ));
        drop(q);
        wait_for_waiters(&mut c, &key, 0);
    }
    let samples = expiry_to_grant(server, if quick { 30 } else { 150 }, 20);
    rows.extend(latency_row(
        "lease deadline to grant (20 ms leases)".into(),
        summary(samples),
        5.0,
    ));
    rows
}
