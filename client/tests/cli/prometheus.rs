//! A real Prometheus (Debian's `prometheus` package, installed by
//! scripts/deps.sh) scraping `hblock exporter` every second on loopback,
//! asked through its HTTP query API what happened to a lock; and the alert
//! rules of docs/prometheus checked and unit-tested by `promtool`.
//!
//! Without prometheus/promtool on PATH these tests fail under CI=true (make
//! test installs them) and are skipped, with a line saying so, otherwise.

use super::exporter::{http_get, Exporter};
use super::*;
use support::raw::Raw;

/// The program's path, or None (skip) when missing outside CI.
pub(super) fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "{name} is not installed: run scripts/deps.sh prometheus (make test-client does)"
        );
        eprintln!("SKIPPED: {name} is not installed (scripts/deps.sh prometheus)");
    }
    found
}

fn docs_prometheus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus")
}

#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = program("promtool") else {
        return;
    };
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(docs_prometheus())
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `prometheus` on a free loopback port with its own storage in a temp dir;
/// killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &Path, target: &str) -> Prometheus {
        let rules = docs_prometheus().join("alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: hblock\n    static_configs:\n      - targets: ['{target}']\n",
            rules = rules.display()
        );
        // A new port (and dir) when the last one was taken before Prometheus bound it.
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("hblock-prometheus-")
                .tempdir()
                .expect("temp dir");
            let config_file = dir.path().join("prometheus.yml");
            std::fs::write(&config_file, &config).expect("write the config");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let addr = format!("127.0.0.1:{port}");
            let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
            let child = Command::new(bin)
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            let mut prometheus = Prometheus { child, addr, dir };
            let ready = eventually(Duration::from_secs(20), || {
                if !matches!(prometheus.child.try_wait(), Ok(None)) {
                    return Some(false); // exited: the port was taken, say
                }
                let up = std::net::TcpStream::connect(&prometheus.addr).is_ok()
                    && http_get(&prometheus.addr, "/-/ready").0 == 200;
                up.then_some(true)
            });
            match ready {
                Some(true) => return prometheus,
                Some(false) => eprintln!("prometheus exited:\n{}", prometheus.log()),
                None => panic!("prometheus never became ready:\n{}", prometheus.log()),
            }
        }
        panic!("prometheus did not start in 5 tries");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The instant query's single value, None when it has no result.
    fn value(&self, query: &str) -> Option<f64> {
        let (status, body) = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", percent_encode(query)),
        );
        assert_eq!(status, 200, "{query}: {body}");
        let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let result = reply["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `query` until it answers `want` (15 s at most).
    fn until(&self, query: &str, want: f64) {
        let mut last = None;
        let found = eventually(Duration::from_secs(15), || {
            last = self.value(query);
            (last == Some(want)).then_some(())
        });
        assert!(
            found.is_some(),
            "{query}: want {want}, last {last:?}\n{}",
            self.log()
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log());
        }
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn prometheus_scrapes_the_exporter() {
    let Some(bin) = program("prometheus") else {
        return;
    };
    let started = Instant::now();
    let server = Server::start();
    let exporter = Exporter::start(&[server.url()], &["--match", "job*"]);
    let prometheus = Prometheus::start(&bin, &exporter.addr);
    prometheus.until("up{job=\"hblock\"}", 1.0);
    prometheus.until("hblock_up", 1.0);
    // The alert rules loaded into this Prometheus, every one healthy.
    let (status, body) = http_get(&prometheus.addr, "/api/v1/rules");
    assert_eq!(status, 200, "{body}");
    let rules: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let loaded: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .filter(|r| r["health"] != "err")
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(loaded.len(), 7, "{body}");
    assert!(loaded.contains(&"HblockLockWithoutHolder"), "{body}");

    // Taken: held, with its token.
    let mut c = server.conn();
    let first: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("job")
        .arg("a")
        .query(&mut c)
        .expect("acquire");
    prometheus.until("hblock_lock_held{key=\"job\"}", 1.0);
    prometheus.until("hblock_lock_token{key=\"job\"}", first as f64);
    prometheus.until("hblock_lock_holder_info{key=\"job\",owner=\"a\"}", 1.0);

    // Two standbys wait.
    let mut waiters: Vec<Raw> = ["b", "c"]
        .iter()
        .map(|owner| {
            let mut raw = Raw::connect(server.port);
            raw.send(&["HBLOCK.ACQUIRE", "job", owner, "WAIT", "0"]);
            raw
        })
        .collect();
    prometheus.until("hblock_lock_waiters{key=\"job\"}", 2.0);

    // Released: the first standby holds it with a newer token.
    let released: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("job")
        .arg("a")
        .arg(first)
        .query(&mut c)
        .expect("release");
    assert_eq!(released, 1);
    let second = waiters[0].int();
    assert!(second > first);
    prometheus.until("hblock_lock_token{key=\"job\"}", second as f64);
    prometheus.until("hblock_lock_waiters{key=\"job\"}", 1.0);
    prometheus.until("hblock_lock_holder_info{key=\"job\",owner=\"b\"}", 1.0);

    // Both released: free.
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("job")
        .arg("b")
        .arg(second)
        .query(&mut c)
        .expect("release b");
    let third = waiters[1].int();
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("job")
        .arg("c")
        .arg(third)
        .query(&mut c)
        .expect("release c");
    prometheus.until("hblock_lock_held{key=\"job\"}", 0.0);
    prometheus.until("hblock_lock_waiters{key=\"job\"}", 0.0);
    prometheus.until("hblock_lock_token{key=\"job\"}", third as f64);

    // The history Prometheus kept: what happened, in its own data.
    prometheus.until("max_over_time(hblock_lock_waiters{key=\"job\"}[5m])", 2.0);
    prometheus.until("min_over_time(hblock_lock_held{key=\"job\"}[5m])", 0.0);
    prometheus.until("max_over_time(hblock_lock_held{key=\"job\"}[5m])", 1.0);
    prometheus.until(
        "min_over_time(hblock_lock_token{key=\"job\"}[5m])",
        first as f64,
    );
    prometheus.until("hblock_released_total", 3.0);
    eprintln!("prometheus test: {:?}", started.elapsed());
}

/// What a scrape serves passes `promtool check metrics` (its lint of names,
/// units and types): `hblock_failover_delay_left_ms` did not (an
/// abbreviated unit), it is `hblock_failover_delay_left_seconds`.
#[test]
fn scraped_text_passes_promtool_check_metrics() {
    let Some(promtool) = program("promtool") else {
        return;
    };
    let server = Server::start();
    let mut c = server.conn();
    let _: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("job")
        .arg("a")
        .query(&mut c)
        .expect("acquire");
    let exporter = Exporter::start(&[server.url()], &[]);
    let (status, body) = http_get(&exporter.addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("hblock_failover_delay_left_seconds"),
        "{body}"
    );
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, body.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
