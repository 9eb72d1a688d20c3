//! `hblock exporter`: /metrics over real HTTP against a real server: lock
//! series after acquire, release and with waiters, INFO hblock's counters,
//! hblock_up 0 (Redis down, module missing), --match, --max-locks and the
//! left-out gauge, usage errors, a cluster's node label.

use super::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use support::raw::Raw;

/// `hblock exporter` in the background on a free port (it prints the address).
pub struct Exporter {
    child: Child,
    pub addr: String,
    /// Its stderr lines so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Exporter {
    pub fn start(urls: &[String], args: &[&str]) -> Exporter {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
        for url in urls {
            cmd.arg("--redis").arg(url);
        }
        let mut child = cmd
            .args(["exporter", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hblock exporter");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("exporter: {line}");
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line.clone());
                }
                if let Some(rest) = line.split("http://").nth(1) {
                    let _ = tx.send(rest.trim_end_matches("/metrics").to_string());
                }
            }
        });
        let mut exporter = Exporter {
            child,
            addr: String::new(),
            log,
        };
        exporter.addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the exporter printed where it listens");
        exporter
    }

    /// Its stderr lines containing `text`.
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        self.log
            .lock()
            .map(|l| l.iter().filter(|l| l.contains(text)).cloned().collect())
            .unwrap_or_default()
    }

    /// The stderr lines containing `text` once there is one (its reader
    /// thread may lag the scrape that caused it), within 5 s.
    pub fn wait_lines_with(&self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.lines_with(text);
            if !lines.is_empty() || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// GET `path`: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }

    /// /metrics as series -> value (comments left out).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        parse(&body)
    }

    /// Polls /metrics until `check` holds (10 s at most); the last scrape.
    pub fn until(
        &self,
        what: &str,
        check: impl Fn(&BTreeMap<String, f64>) -> bool,
    ) -> BTreeMap<String, f64> {
        let mut last = BTreeMap::new();
        let found = eventually(Duration::from_secs(10), || {
            last = self.metrics();
            check(&last).then_some(())
        });
        assert!(found.is_some(), "{what}: never; last scrape:\n{last:#?}");
        last
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` from `addr` over HTTP/1.0 (no chunked replies): (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect over HTTP");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_string())
}

pub fn parse(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> Option<f64> {
    m.get(series).copied()
}

#[test]
fn exporter_shows_locks_waiters_and_counters() {
    let server = Server::start();
    let mut c = server.conn();
    let token: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("a")
        .arg("web-1")
        .query(&mut c)
        .expect("acquire a");
    let binary: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("bin")
        .arg(&b"\xff\x01"[..])
        .query(&mut c)
        .expect("acquire bin");
    assert!(binary > 0);
    // Not a lock: never exported.
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("x")
        .query(&mut c)
        .expect("set");
    let exporter = Exporter::start(&[server.url()], &[]);
    let m = exporter.metrics();
    assert_eq!(value(&m, "hblock_up"), Some(1.0));
    assert_eq!(value(&m, "hblock_lock_held{key=\"a\"}"), Some(1.0));
    assert_eq!(
        value(&m, "hblock_lock_token{key=\"a\"}"),
        Some(token as f64)
    );
    assert_eq!(value(&m, "hblock_lock_waiters{key=\"a\"}"), Some(0.0));
    assert_eq!(value(&m, "hblock_lock_missed_beats{key=\"a\"}"), Some(0.0));
    assert_eq!(
        value(&m, "hblock_lock_takeovers_total{key=\"a\"}"),
        Some(0.0)
    );
    let ttl = value(&m, "hblock_lock_ttl_seconds{key=\"a\"}").expect("ttl");
    assert!(ttl > 0.0 && ttl <= 3.0, "ttl {ttl}");
    assert_eq!(
        value(&m, "hblock_lock_holder_info{key=\"a\",owner=\"web-1\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "hblock_lock_holder_info{key=\"bin\",owner=\"0xff01\"}"),
        Some(1.0),
        "a non-UTF-8 owner as the CLI shows it"
    );
    assert_eq!(value(&m, "hblock_acquired_total"), Some(2.0));
    assert_eq!(value(&m, "hblock_waiting"), Some(0.0));
    assert_eq!(value(&m, "hblock_failover_delay_left_seconds"), Some(0.0));
    assert_eq!(value(&m, "hblock_locks_left_out"), Some(0.0));
    assert!(value(&m, "hblock_scrape_duration_seconds").is_some());
    assert!(!m.keys().any(|k| k.contains("plain")), "{m:#?}");

    // Two clients wait: the lock's waiters and INFO's waiting gauge say so.
    let mut waiters: Vec<Raw> = ["w1", "w2"]
        .iter()
        .map(|owner| {
            let mut raw = Raw::connect(server.port);
            raw.send(&["HBLOCK.ACQUIRE", "a", owner, "WAIT", "0"]);
            raw
        })
        .collect();
    exporter.until("two waiters", |m| {
        value(m, "hblock_lock_waiters{key=\"a\"}") == Some(2.0)
            && value(m, "hblock_waiting") == Some(2.0)
    });

    // Released: the first waiter holds it with a newer token.
    let released: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("a")
        .arg("web-1")
        .arg(token)
        .query(&mut c)
        .expect("release");
    assert_eq!(released, 1);
    let next = waiters[0].int();
    assert!(next > token, "{next} after {token}");
    let m = exporter.until("w1 holds a", |m| {
        value(m, "hblock_lock_holder_info{key=\"a\",owner=\"w1\"}") == Some(1.0)
    });
    assert_eq!(value(&m, "hblock_lock_held{key=\"a\"}"), Some(1.0));
    assert_eq!(value(&m, "hblock_lock_token{key=\"a\"}"), Some(next as f64));
    assert_eq!(value(&m, "hblock_lock_waiters{key=\"a\"}"), Some(1.0));
    assert_eq!(value(&m, "hblock_released_total"), Some(1.0));
    assert!(
        value(&m, "hblock_lock_holder_info{key=\"a\",owner=\"web-1\"}").is_none(),
        "the old holder's series is gone"
    );

    // Released with nobody waiting: free, no holder.
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("a")
        .arg("w1")
        .arg(next)
        .query(&mut c)
        .expect("release w1");
    let last = waiters[1].int();
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("a")
        .arg("w2")
        .arg(last)
        .query(&mut c)
        .expect("release w2");
    let m = exporter.until("a free", |m| {
        value(m, "hblock_lock_held{key=\"a\"}") == Some(0.0)
    });
    assert_eq!(value(&m, "hblock_lock_token{key=\"a\"}"), Some(last as f64));
    assert_eq!(value(&m, "hblock_lock_ttl_seconds{key=\"a\"}"), Some(-1.0));
    assert_eq!(value(&m, "hblock_lock_waiters{key=\"a\"}"), Some(0.0));
    assert!(!m
        .keys()
        .any(|k| k.starts_with("hblock_lock_holder_info{key=\"a\"")));

    let (status, _) = exporter.get("/nothing");
    assert_eq!(status, 404);
}

#[test]
fn exporter_says_down_and_keeps_serving() {
    // The module missing: up 0, no lock series.
    let bare = Server::with(support::Options::default().without_module());
    let exporter = Exporter::start(&[bare.url()], &[]);
    let m = exporter.metrics();
    assert_eq!(value(&m, "hblock_up"), Some(0.0), "{m:#?}");
    assert!(!m.keys().any(|k| k.starts_with("hblock_lock_")), "{m:#?}");
    drop(exporter);

    // Redis going away and coming back.
    let mut server = Server::start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("k")
        .arg("o")
        .query(&mut c)
        .expect("acquire");
    let mut exporter = Exporter::start(&[server.url()], &[]);
    assert_eq!(value(&exporter.metrics(), "hblock_up"), Some(1.0));
    server.stop();
    let m = exporter.metrics();
    assert_eq!(value(&m, "hblock_up"), Some(0.0), "{m:#?}");
    assert!(!m.keys().any(|k| k.starts_with("hblock_lock_")), "{m:#?}");
    assert!(exporter.alive(), "a Redis error never ends the exporter");
    server.relaunch();
    exporter.until("up again", |m| value(m, "hblock_up") == Some(1.0));
    drop(exporter);

    // A user whose ACL refuses HBLOCK.INFO: the node's scrape failed (up 0),
    // not "no locks".
    let mut c = server.conn();
    let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("k2")
        .arg("o")
        .query(&mut c)
        .expect("acquire");
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                "noinfo",
                "on",
                ">pw",
                "~*",
                "+@all",
                "-hblock.info",
            ][..],
        )
        .query(&mut c)
        .expect("acl setuser");
    let url = format!("redis://noinfo:pw@127.0.0.1:{}/", server.port);
    let refused = Exporter::start(&[url], &[]);
    let m = refused.metrics();
    assert_eq!(value(&m, "hblock_up"), Some(0.0), "{m:#?}");
    assert!(!m.keys().any(|k| k.starts_with("hblock_lock_")), "{m:#?}");
}

#[test]
fn exporter_match_and_max_locks() {
    let server = Server::start();
    let mut c = server.conn();
    for key in ["job:1", "job:2", "job:3", "other:1", "x"] {
        let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
            .arg(key)
            .arg("o")
            .query(&mut c)
            .expect("acquire");
    }
    let held = |m: &BTreeMap<String, f64>| -> Vec<String> {
        m.keys()
            .filter_map(|k| k.strip_prefix("hblock_lock_held{key=\""))
            .map(|k| k.trim_end_matches("\"}").to_string())
            .collect()
    };
    let capped = Exporter::start(&[server.url()], &["--match", "job:*", "--max-locks", "2"]);
    let m = capped.metrics();
    assert_eq!(held(&m), ["job:1", "job:2"], "{m:#?}");
    assert_eq!(value(&m, "hblock_locks_left_out"), Some(1.0));

    let two = Exporter::start(
        &[server.url()],
        &["--match", "job:*", "--match", "other:*", "--match", "job:1"],
    );
    let m = two.metrics();
    assert_eq!(held(&m), ["job:1", "job:2", "job:3", "other:1"], "{m:#?}");
    assert_eq!(value(&m, "hblock_locks_left_out"), Some(0.0));

    let all = Exporter::start(&[server.url()], &["--max-locks", "0"]);
    let m = all.metrics();
    assert!(held(&m).is_empty(), "{m:#?}");
    assert_eq!(value(&m, "hblock_locks_left_out"), Some(5.0));
}

#[test]
fn exporter_usage_errors_exit_2() {
    let server = Server::start();
    for args in [
        &["exporter"][..],
        &["exporter", "--listen", "127.0.0.1:0", "--max-locks", "-1"],
        &["exporter", "--listen", "127.0.0.1:0", "--max-locks", "many"],
        &["exporter", "--listen", "not an address"],
    ] {
        let out = hblock(&server, args);
        assert_eq!(
            code(&out),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn exporter_on_a_cluster_labels_each_node() {
    let cluster = support::cluster::Cluster::start();
    let mut c = cluster.client();
    for key in ["{a}k", "{b}k", "{c}k"] {
        let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
            .arg(key)
            .arg("o")
            .query(&mut c)
            .expect("acquire");
    }
    let exporter = Exporter::start(&cluster.urls()[..1], &["--cluster"]);
    let m = exporter.metrics();
    let masters = cluster.masters();
    for &i in &masters {
        let node = format!("127.0.0.1:{}", cluster.nodes[i].port);
        assert_eq!(
            value(&m, &format!("hblock_up{{node=\"{node}\"}}")),
            Some(1.0),
            "{m:#?}"
        );
    }
    assert_eq!(
        m.keys().filter(|k| k.starts_with("hblock_up{")).count(),
        masters.len()
    );
    for key in ["{a}k", "{b}k", "{c}k"] {
        let node = format!("127.0.0.1:{}", cluster.nodes[cluster.master_of(key)].port);
        assert_eq!(
            value(
                &m,
                &format!("hblock_lock_held{{key=\"{key}\",node=\"{node}\"}}")
            ),
            Some(1.0),
            "{key} on {node}: {m:#?}"
        );
    }
}

/// Regression (review of issue 27): one TCP client that pipelines requests
/// and never reads the replies must not stop the exporter from answering
/// Prometheus (it served one request at a time and blocked writing to that
/// client, with no write timeout: every other scrape hung until the client
/// went away). Each of its requests also cost Redis a full scrape.
#[test]
fn a_client_that_never_reads_does_not_stall_other_scrapes() {
    let server = Server::start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("k")
        .arg("o")
        .query(&mut c)
        .expect("acquire");
    let exporter = Exporter::start(&[server.url()], &[]);
    let mut stalled = TcpStream::connect(&exporter.addr).expect("connect");
    stalled
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {}\r\n\r\n", exporter.addr);
    // As much as the socket takes in 5 s; the exporter answers some of them
    // into buffers nobody reads.
    for _ in 0..2000 {
        if stalled.write_all(request.as_bytes()).is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let (tx, rx) = mpsc::channel();
    let addr = exporter.addr.clone();
    std::thread::spawn(move || {
        let _ = tx.send(http_get(&addr, "/metrics"));
    });
    let answered = rx.recv_timeout(Duration::from_secs(10));
    drop(stalled);
    let (status, body) = answered.expect("a scrape answered within 10 s beside a stalled client");
    assert_eq!(status, 200, "{body}");
}

/// Why `hblock_up` is 0: one stderr line when a node's scrapes start failing
/// (its URL, the error and the hint), one when they recover, not one per
/// scrape.
#[test]
fn exporter_says_once_why_a_node_is_down_and_when_it_recovers() {
    let bare = Server::with(support::Options::default().without_module());
    let exporter = Exporter::start(&[bare.url()], &[]);
    for _ in 0..3 {
        assert_eq!(value(&exporter.metrics(), "hblock_up"), Some(0.0));
    }
    let failing = exporter.wait_lines_with("failing");
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert!(failing[0].contains("module is not loaded"), "{failing:#?}");
    drop(exporter);

    let mut server = Server::start();
    let exporter = Exporter::start(&[server.url()], &[]);
    assert_eq!(value(&exporter.metrics(), "hblock_up"), Some(1.0));
    assert!(exporter.lines_with("failing").is_empty());
    server.stop();
    for _ in 0..3 {
        assert_eq!(value(&exporter.metrics(), "hblock_up"), Some(0.0));
    }
    let failing = exporter.wait_lines_with("failing");
    assert_eq!(failing.len(), 1, "{failing:#?}");
    let port = server
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(failing[0].contains(&format!(":{port}")), "{failing:#?}");
    assert!(failing[0].contains("exporter: "), "{failing:#?}");
    server.relaunch();
    exporter.until("up again", |m| value(m, "hblock_up") == Some(1.0));
    let _ = exporter.metrics();
    let recovered = exporter.wait_lines_with("recovered");
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    assert_eq!(exporter.lines_with("failing").len(), 1);
}

/// SIGCONT to a stopped server when the test ends, however it ends.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a server this test started and stopped.
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

/// A hung server (SIGSTOP: the kernel accepts connections, no reply comes):
/// the scrape answers `hblock_up 0` within Prometheus's default
/// `scrape_timeout` (10 s), it took ~10 s with 5 s per reply.
#[test]
fn a_hung_server_is_down_within_the_scrape_timeout() {
    let server = Server::start();
    let exporter = Exporter::start(&[server.url()], &[]);
    assert_eq!(value(&exporter.metrics(), "hblock_up"), Some(1.0));
    let pid = i32::try_from(server.pid().expect("the server runs")).expect("a pid");
    // SAFETY: kill(2) on the server this test started.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let _resume = Resume(pid);
    let asked = Instant::now();
    let m = exporter.metrics();
    let took = asked.elapsed();
    assert_eq!(value(&m, "hblock_up"), Some(0.0), "{m:#?}");
    eprintln!("hung scrape took {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let failing = exporter.wait_lines_with("failing");
    assert!(
        failing.iter().any(|l| l.contains("timed out")),
        "{failing:#?}"
    );
}
