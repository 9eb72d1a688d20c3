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
/// epoll set over all of them, every socket timed when epoll first reports
/// it readable (a pass over 1,000 sockets with read() took ~1 ms itself).
fn arrivals(conns: Vec<TcpStream>, since: Instant, samples: &mut Vec<f64>) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain epoll calls on descriptors owned by `conns`, which
    // outlive the epoll set (closed below, before `conns` is dropped).
    unsafe {
        let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        assert!(ep >= 0, "epoll_create1");
        for (i, s) in conns.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            let added = libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev);
            assert_eq!(added, 0, "epoll_ctl");
        }
        let mut ready = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len()];
        let mut seen = vec![false; conns.len()];
        let mut left = conns.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while left > 0 {
            assert!(Instant::now() < deadline, "not every client was woken");
            let n = libc::epoll_wait(ep, ready.as_mut_ptr(), ready.len() as i32, 100);
            let at = since.elapsed().as_secs_f64() * 1e3;
            for ev in ready.iter().take(n.max(0) as usize) {
                let i = ev.u64 as usize;
                if let (Some(false), Some(s)) = (seen.get(i).copied(), conns.get(i)) {
                    seen[i] = true;
                    left -= 1;
                    samples.push(at);
                    libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, s.as_raw_fd(), std::ptr::null_mut());
                }
            }
        }
        libc::close(ep);
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
        let token = token.to_string();
        let release = ["HBLOCK.RELEASE", key.as_str(), "holder", token.as_str()];
        trigger_and_time(server, &release, b":1\r\n", watchers, &mut samples);
    }
    samples
}

/// Sends `command` on a connection of its own and times each of `conns`
/// from the moment it was sent, then checks the command's own reply. Its
/// reply is read after the others: Redis may write it last (it queues the
/// woken clients' replies ahead of it), and waiting for it first would time
/// every watcher at the end of the fan-out.
fn trigger_and_time(
    server: &Server,
    command: &[&str],
    expected: &[u8],
    conns: Vec<TcpStream>,
    samples: &mut Vec<f64>,
) {
    let mut trigger = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let mut request = Vec::new();
    encode(command, &mut request);
    let sent = Instant::now();
    trigger.write_all(&request).expect("send the trigger");
    arrivals(conns, sent, samples);
    let mut reply = vec![0u8; expected.len()];
    trigger.read_exact(&mut reply).expect("the trigger's reply");
    assert_eq!(reply, expected, "{command:?}");
}

/// The same for one PUBLISH to `n` subscribers.
fn publish_wake_ups(server: &Server, n: usize, rounds: usize) -> Vec<f64> {
    let mut samples = Vec::with_capacity(n * rounds);
    for round in 0..rounds {
        let channel = format!("watch:{round}");
        let mut request = Vec::new();
        encode(&["SUBSCRIBE", channel.as_str()], &mut request);
        let subscribers = connections(server, &request, n, true);
        let expected = format!(":{n}\r\n"); // every subscriber got it
        let publish = ["PUBLISH", channel.as_str(), "changed"];
        trigger_and_time(
            server,
            &publish,
            expected.as_bytes(),
            subscribers,
            &mut samples,
        );
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
