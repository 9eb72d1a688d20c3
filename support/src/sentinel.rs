//! Redis Sentinel on loopback: a master and a replica (each a `Server` with
//! the module) watched by three Sentinels, each the server binary run with
//! `--sentinel` (`SERVER_BIN` picks it: redis-server or valkey-server) in its
//! own temp dir. Every process is a guard: killed and reaped on drop, also
//! when a test fails (the Sentinel logs are printed then).

use crate::{eventually, Options, Server};
use redis::Connection;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The `sentinel.conf` lines of each Sentinel, as docs/operations.md shows
/// them (`make test-docs` checks the two are the same file); the master's
/// port 6379 is replaced by the test master's.
pub const SENTINEL_CONF: &str = include_str!("sentinel.conf");
/// The name the Sentinels monitor the master under.
pub const MASTER_NAME: &str = "hbm";
/// `sentinel down-after-milliseconds` in SENTINEL_CONF: how long a master
/// is unreachable before a Sentinel thinks it is down.
pub const DOWN_AFTER_MS: u64 = 1000;

/// SENTINEL_CONF for a master on `master_port`.
pub fn sentinel_conf(master_port: u16) -> String {
    SENTINEL_CONF.replace("127.0.0.1 6379 ", &format!("127.0.0.1 {master_port} "))
}

fn server_bin() -> String {
    std::env::var("SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// One Sentinel process.
pub struct SentinelProc {
    child: Option<Child>,
    dir: TempDir,
    pub port: u16,
}

impl SentinelProc {
    fn start(master_port: u16) -> SentinelProc {
        let mut dir = tempfile::Builder::new()
            .prefix("hblock-sentinel-")
            .tempdir()
            .expect("temp dir");
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("sentinel.conf");
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile \"sentinel.log\"\ndir \"{}\"\n{}",
                dir.path().display(),
                sentinel_conf(master_port)
            );
            std::fs::write(&conf, text).expect("write sentinel.conf");
            let child = Command::new(server_bin())
                .current_dir(dir.path())
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the server binary with --sentinel");
            let mut s = SentinelProc {
                child: Some(child),
                dir,
                port,
            };
            let pid = s.child.as_ref().map(Child::id);
            let up = eventually(Duration::from_secs(10), || {
                if let Some(Ok(Some(_))) = s.child.as_mut().map(|c| c.try_wait()) {
                    return Some(false); // exited: the port was taken
                }
                let mut c = s.try_conn().ok()?;
                // Ours, not another test's server that took the port between
                // free_port() and the Sentinel's bind.
                let ours = crate::process_id(&mut c) == pid;
                ours.then_some(true)
            });
            if up == Some(true) {
                return s;
            }
            s.kill();
            dir = s.take_dir();
        }
        panic!("a Sentinel did not start (SERVER_BIN={})", server_bin());
    }

    fn take_dir(mut self) -> TempDir {
        self.kill();
        let empty = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, empty)
    }

    fn try_conn(&self) -> redis::RedisResult<Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?
            .get_connection_with_timeout(Duration::from_secs(2))
    }

    pub fn conn(&self) -> Connection {
        let c = self.try_conn().expect("connect to a Sentinel");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        c
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- sentinel.log of port {} ---\n{}", self.port, self.log());
        }
    }
}

/// A master, a replica and three Sentinels; `nodes[0]` starts as the master.
pub struct SentinelSet {
    pub nodes: Vec<Server>,
    pub sentinels: Vec<SentinelProc>,
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME` of one Sentinel: the master's port.
fn master_port_of(c: &mut Connection) -> Option<u16> {
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(MASTER_NAME)
        .query(c)
        .ok()?;
    addr.map(|(_, port)| port)
}

/// A field of `SENTINEL MASTER name`.
fn master_field(c: &mut Connection, field: &str) -> Option<String> {
    let pairs: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(MASTER_NAME)
        .query(c)
        .ok()?;
    pairs
        .chunks(2)
        .find(|p| p.first().map(String::as_str) == Some(field))
        .and_then(|p| p.get(1).cloned())
}

impl SentinelSet {
    /// Starts the data nodes with `options` (plus replicaof for the
    /// replica), then the Sentinels once the replica is in sync, and waits
    /// until every Sentinel knows the replica and the two other Sentinels.
    pub fn start(options: Options) -> SentinelSet {
        // A full sync at once, not after the default 5 s of waiting for
        // more replicas (also when the old master rejoins as a replica).
        let options = options.config("repl-diskless-sync-delay", "0");
        let master = Server::with(options.clone());
        let replica =
            Server::with(options.config("replicaof", &format!("127.0.0.1 {}", master.port)));
        crate::wait_in_sync(&mut master.conn(), &mut replica.conn());
        let sentinels: Vec<SentinelProc> =
            (0..3).map(|_| SentinelProc::start(master.port)).collect();
        let set = SentinelSet {
            nodes: vec![master, replica],
            sentinels,
        };
        let ready = eventually(Duration::from_secs(30), || {
            set.sentinels
                .iter()
                .all(|s| {
                    let mut c = s.conn();
                    master_field(&mut c, "num-slaves").as_deref() == Some("1")
                        && master_field(&mut c, "num-other-sentinels").as_deref() == Some("2")
                })
                .then_some(())
        });
        assert!(
            ready.is_some(),
            "the Sentinels never saw the replica and each other"
        );
        set
    }

    /// `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/hbm`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// The node every running Sentinel names as the master (None while
    /// they disagree or name a node that is not one of ours).
    pub fn agreed_master(&self) -> Option<usize> {
        let mut ports = self
            .sentinels
            .iter()
            .filter_map(|s| s.try_conn().ok().and_then(|mut c| master_port_of(&mut c)));
        let first = ports.next()?;
        if ports.any(|p| p != first) {
            return None;
        }
        self.nodes.iter().position(|n| n.port == first)
    }

    /// Waits until every Sentinel names a master other than `old` and that
    /// node answers ROLE as a master; the new master's index and when.
    pub fn wait_switched(&self, old: usize, within: Duration) -> Option<(usize, Instant)> {
        eventually(within, || {
            let new = self.agreed_master().filter(|&n| n != old)?;
            let mut c = self.nodes.get(new)?.conn();
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).ok()?;
            matches!(role.first(), Some(redis::Value::BulkString(r)) if r == b"master")
                .then_some((new, Instant::now()))
        })
    }

    /// `SENTINEL FAILOVER hbm` on the first Sentinel that accepts it.
    pub fn planned_failover(&self) {
        let accepted = eventually(Duration::from_secs(10), || {
            self.sentinels.iter().find_map(|s| {
                let mut c = s.try_conn().ok()?;
                redis::cmd("SENTINEL")
                    .arg("FAILOVER")
                    .arg(MASTER_NAME)
                    .query::<String>(&mut c)
                    .ok()
            })
        });
        assert!(accepted.is_some(), "no Sentinel accepted SENTINEL FAILOVER");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conf_names_the_master_and_the_down_after_the_tests_assume() {
        let conf = sentinel_conf(7001);
        assert!(conf.contains(&format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 7001 2\n"
        )));
        assert!(conf.contains(&format!(
            "sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        )));
    }
}
