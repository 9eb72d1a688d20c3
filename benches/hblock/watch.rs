//! HBLOCK.WATCH: 1,000 watchers on one key, one change of holder; how long
//! after the change each watcher's reply arrives.

use crate::stats::{summary, Row};
use crate::support::raw::encode;
use crate::support::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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
        let mut watchers: Vec<TcpStream> = (0..n)
            .map(|_| {
                let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
                s.write_all(&request).expect("WATCH");
                s.set_nonblocking(true).expect("nonblocking");
                s
            })
            .collect();
        let blocked = Instant::now() + Duration::from_secs(30);
        while crate::stats::info_number(&mut c, "clients", "blocked_clients") < n as f64 {
            assert!(Instant::now() < blocked, "watchers never all blocked");
        }
        let released = Instant::now();
        let _: i64 = redis::cmd("HBLOCK.RELEASE")
            .arg(&[key.as_str(), "holder", &token.to_string()])
            .query(&mut c)
            .expect("RELEASE");
        // Spin over the sockets: each reply's arrival time, ~1 ms resolution.
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !watchers.is_empty() {
            assert!(Instant::now() < deadline, "watchers were not all woken");
            watchers.retain_mut(|s| match s.read(&mut buf) {
                Ok(n) if n > 0 => {
                    samples.push(released.elapsed().as_secs_f64() * 1e3);
                    false
                }
                _ => true,
            });
        }
    }
    samples
}

pub fn run(server: &Server, quick: bool) -> Vec<Row> {
    let samples = wake_ups(server, 1000, if quick { 2 } else { 10 });
    crate::failover::latency_row(
        "1,000 watchers woken by one RELEASE".into(),
        summary(samples),
        5.0,
    )
}
