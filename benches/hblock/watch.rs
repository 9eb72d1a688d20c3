//! HBLOCK.WATCH: 1,000 watchers on one key, one change of holder; how long
//! after the change each watcher's reply arrives. The baseline is the same
//! measurement for Redis's own way to tell 1,000 clients of one event: one
//! PUBLISH to 1,000 subscribers.

use crate::stats::{summary, Row};
use crate::support::raw::encode;
use crate::support::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `n` connections that each sent `request` and read its first reply (the
/// SUBSCRIBE confirmation when `confirmations`), left non-blocking.
fn connections(server: &Server, request: &[u8], n: usize, confirmations: bool) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
            s.write_all(request).expect("request");
            if confirmations {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).expect("subscribed");
            }
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect()
}

/// When each connection's next reply arrives, in ms after `since`: one
/// thread spinning over the sockets (~1 ms per pass over 1,000).
fn arrivals(mut conns: Vec<TcpStream>, since: Instant, samples: &mut Vec<f64>) {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !conns.is_empty() {
        assert!(Instant::now() < deadline, "not every client was woken");
        conns.retain_mut(|s| match s.read(&mut buf) {
            Ok(n) if n > 0 => {
                samples.push(since.elapsed().as_secs_f64() * 1e3);
                false
            }
            _ => true,
        });
    }
}

/// Wake-up delays (ms) of `n` watchers after one RELEASE, `rounds` times.
fn wake_ups(server: &Server, n: usize, rounds: usize) -> Vec<f64> {
    let mut c = server.conn();
    let mut samples = Vec::with_capacity(n * rounds);
    for round in 0..rounds {
        let key = format!("watch:{round}");
        let token: i64 = redis::cmd("HBLOCK.ACQUIRE")
            .arg(&[key.as_str(), "holder", "INTERVAL", "600000"])
            .query(&mut c)
            .expect("ACQUIRE");
        let mut request = Vec::new();
        encode(
            &["HBLOCK.WATCH", key.as_str(), "SEEN", &token.to_string()],
            &mut request,
        );
        let watchers = connections(server, &request, n, false);
        let blocked = Instant::now() + Duration::from_secs(30);
        while crate::stats::info_number(&mut c, "clients", "blocked_clients") < n as f64 {
            assert!(Instant::now() < blocked, "watchers never all blocked");
        }
        let released = Instant::now();
        let _: i64 = redis::cmd("HBLOCK.RELEASE")
            .arg(&[key.as_str(), "holder", &token.to_string()])
            .query(&mut c)
            .expect("RELEASE");
        arrivals(watchers, released, &mut samples);
    }
    samples
}

/// The same for one PUBLISH to `n` subscribers.
fn publish_wake_ups(server: &Server, n: usize, rounds: usize) -> Vec<f64> {
    let mut c = server.conn();
    let mut samples = Vec::with_capacity(n * rounds);
    for round in 0..rounds {
        let channel = format!("watch:{round}");
        let mut request = Vec::new();
        encode(&["SUBSCRIBE", channel.as_str()], &mut request);
        let subscribers = connections(server, &request, n, true);
        let published = Instant::now();
        let got: i64 = redis::cmd("PUBLISH")
            .arg(&[channel.as_str(), "changed"])
            .query(&mut c)
            .expect("PUBLISH");
        assert_eq!(got, n as i64, "every subscriber got it");
        arrivals(subscribers, published, &mut samples);
    }
    samples
}

pub fn run(server: &Server, quick: bool) -> Vec<Row> {
    let rounds = if quick { 2 } else { 10 };
    let (p50, p99, _) = summary(wake_ups(server, 1000, rounds));
    let (b50, b99, _) = summary(publish_wake_ups(server, 1000, rounds));
    let row = |name: &str, hblock: f64, baseline: f64, goal: Option<(String, bool)>| Row {
        name: format!("1,000 watchers woken by one RELEASE, {name}"),
        unit: "ms",
        hblock,
        baseline_name: "PUBLISH to 1,000 subscribers".into(),
        baseline,
        goal,
    };
    vec![
        row("p50", p50, b50, None),
        row("p99", p99, b99, Some(("p99 < 5 ms".into(), p99 < 5.0))),
    ]
}
