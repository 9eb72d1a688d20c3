//! Test support (a dev-only crate of the workspace). The test server: a real `redis-server --loadmodule` on a free loopback port,
//! in its own temp dir, killed and reaped on drop. The log is printed when the
//! test that owns it fails.
//!
//! `SERVER_BIN` overrides the server binary (default `redis-server`),
//! `HBLOCK_MODULE` the module (default `target/release/libhblock.so`).

pub mod cluster;
pub mod raw;
pub mod rng;

use redis::{Connection, ConnectionLike, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub fn module_path() -> PathBuf {
    let path = std::env::var_os("HBLOCK_MODULE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libhblock.so"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release` (or `make test`) first",
        path.display()
    );
    path
}

fn server_bin() -> String {
    std::env::var("SERVER_BIN").unwrap_or_else(|_| "redis-server".into())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A free port below 55536 whose cluster bus port (+10000) is free as well.
fn free_cluster_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos()) as u64
        ^ u64::from(std::process::id());
    for attempt in 0..500u64 {
        let port = 20_000
            + ((seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(attempt * 7_919))
                % 25_000) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// How to start a server: extra `--name value` config and loadmodule arguments.
#[derive(Clone, Default)]
pub struct Options {
    pub config: Vec<(String, String)>,
    pub module_args: Vec<String>,
    /// A cluster node: its port + 10000 (the cluster bus) must be free too.
    pub cluster_node: bool,
    /// Start without `--loadmodule` (MODULE LOAD allowed instead).
    pub no_module: bool,
}

impl Options {
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.config.push((name.into(), value.into()));
        self
    }
    pub fn cluster_node(mut self) -> Self {
        self.cluster_node = true;
        self.config("cluster-enabled", "yes")
            .config("cluster-config-file", "nodes.conf")
            .config("cluster-node-timeout", "1000")
    }

    pub fn without_module(mut self) -> Self {
        self.no_module = true;
        self.config("enable-module-command", "yes")
    }

    pub fn module_arg(mut self, name: &str, value: &str) -> Self {
        self.module_args.push(name.into());
        self.module_args.push(value.into());
        self
    }
}

pub struct Server {
    child: Option<Child>,
    dir: TempDir,
    pub port: u16,
    options: Options,
}

impl Server {
    pub fn start() -> Server {
        Server::with(Options::default())
    }

    pub fn with(options: Options) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("hblock-test-")
            .tempdir()
            .expect("temp dir");
        let mut server = Server {
            child: None,
            dir,
            port: 0,
            options,
        };
        server.launch();
        server
    }

    /// A replica of `master` (REPLICAOF at startup).
    pub fn replica_of(master: &Server) -> Server {
        Server::with(Options::default().config("replicaof", &format!("127.0.0.1 {}", master.port)))
    }

    /// Starts the process, retrying on another port if this one was taken.
    /// A restart keeps the port when it is still free (replicas and clients
    /// find the server where it was).
    fn launch(&mut self) {
        for attempt in 0..5 {
            let keep = attempt == 0
                && self.port != 0
                && TcpListener::bind(("127.0.0.1", self.port)).is_ok();
            self.port = if keep {
                self.port
            } else if self.options.cluster_node {
                free_cluster_port()
            } else {
                free_port()
            };
            let mut cmd = Command::new(server_bin());
            cmd.current_dir(self.dir.path())
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--dir", &self.dir.path().display().to_string()])
                .args(["--logfile", "redis.log"])
                .args(["--save", ""])
                .args(["--enable-debug-command", "yes"])
                .args(["--daemonize", "no"]);
            for (name, value) in &self.options.config {
                cmd.arg(format!("--{name}")).arg(value);
            }
            if !self.options.no_module {
                cmd.arg("--loadmodule").arg(module_path());
                cmd.args(&self.options.module_args);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            self.child = Some(child);
            if self.wait_ready() {
                return;
            }
            self.kill();
        }
        panic!("redis-server did not start; log:\n{}", self.log());
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false; // exited: bad config or port taken
                }
            }
            if let Ok(mut conn) = self.try_conn() {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn try_conn(&self) -> redis::RedisResult<Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's process id (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conn(&self) -> Connection {
        self.try_conn().expect("connect")
    }

    /// A connection speaking RESP3.
    pub fn conn_resp3(&self) -> Connection {
        let url = format!("{}?protocol=resp3", self.url());
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect resp3")
    }

    /// SIGKILLs the server (no shutdown save) and starts it again in the same
    /// directory, as after a crash.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// SIGKILLs the server and starts it again in the same directory with
    /// other options (for example without `replicaof`, to see what it
    /// kept on its own disk).
    pub fn crash_and_restart_with(&mut self, options: Options) {
        self.kill();
        self.options = options;
        self.launch();
    }

    /// Waits for the process to exit by itself (SHUTDOWN); its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = eventually(within, || child.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// Starts the server again in its directory after it exited by itself.
    pub fn relaunch(&mut self) {
        self.kill();
        self.launch();
    }

    /// Whether this server was started and not stopped on purpose.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the server at once (SIGKILL), as when it crashes, without restarting it.
    pub fn stop(&mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopped on purpose (`stop`) is not a crash.
        let crashed = self.child.is_some() && !self.alive();
        self.kill();
        if std::thread::panicking() || crashed {
            eprintln!("--- redis.log of port {} ---\n{}", self.port, self.log());
        }
        assert!(
            !crashed || std::thread::panicking(),
            "redis-server died during the test"
        );
    }
}

/// Starts a server that must refuse to start; returns its log.
pub fn refused_start(options: Options) -> String {
    let dir = tempfile::Builder::new()
        .prefix("hblock-test-")
        .tempdir()
        .expect("temp dir");
    let mut cmd = Command::new(server_bin());
    cmd.current_dir(dir.path())
        .args(["--port", &free_port().to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--logfile", "redis.log"])
        .args(["--save", ""])
        .arg("--loadmodule")
        .arg(module_path())
        .args(&options.module_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn redis-server");
    let exited = eventually(Duration::from_secs(10), || child.try_wait().ok().flatten());
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server started with {:?}", options.module_args);
    }
    std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default()
}

/// Runs a command given as a list of byte-string-like arguments.
pub fn call<T: redis::FromRedisValue>(
    conn: &mut impl ConnectionLike,
    args: &[&[u8]],
) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("command name"));
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

/// The full error text of a failed command (`CODE detail`), or a panic when it succeeded.
pub fn error_of(conn: &mut impl ConnectionLike, args: &[&[u8]]) -> String {
    match call::<Value>(conn, args) {
        Ok(value) => panic!("expected an error from {:?}, got {value:?}", show(args)),
        Err(err) => error_text(&err),
    }
}

pub fn error_text(err: &redis::RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => err.to_string(),
    }
}

pub fn show(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Polls `check` until it returns Some or the deadline passes.
pub fn eventually<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// HBLOCK.INFO as (field, value) pairs in reply order; None for a missing key.
pub fn info(conn: &mut impl ConnectionLike, key: &str) -> Option<Vec<(String, Value)>> {
    let reply: Value = redis::cmd("HBLOCK.INFO")
        .arg(key)
        .query(conn)
        .expect("HBLOCK.INFO");
    let items = match reply {
        Value::Nil => return None,
        Value::Array(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => panic!("unexpected HBLOCK.INFO reply {other:?}"),
    };
    let mut pairs = Vec::new();
    let mut it = items.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let name = match name {
            Value::BulkString(b) => String::from_utf8(b).expect("field name"),
            other => panic!("field name should be a bulk string, got {other:?}"),
        };
        pairs.push((name, value));
    }
    Some(pairs)
}

/// One HBLOCK.INFO field as an integer.
pub fn info_int(conn: &mut impl ConnectionLike, key: &str, field: &str) -> i64 {
    let pairs = info(conn, key).expect("lock exists");
    match pairs.into_iter().find(|(name, _)| name == field) {
        Some((_, Value::Int(n))) => n,
        other => panic!("field {field}: {other:?}"),
    }
}

/// One HBLOCK.INFO field as bytes (None for nil).
pub fn info_bytes(conn: &mut impl ConnectionLike, key: &str, field: &str) -> Option<Vec<u8>> {
    let pairs = info(conn, key).expect("lock exists");
    match pairs.into_iter().find(|(name, _)| name == field) {
        Some((_, Value::BulkString(b))) => Some(b),
        Some((_, Value::Nil)) => None,
        other => panic!("field {field}: {other:?}"),
    }
}

pub fn state(conn: &mut impl ConnectionLike, key: &str) -> String {
    String::from_utf8(info_bytes(conn, key, "state").expect("state")).expect("utf8")
}

/// `INFO hblock` counter `hblock_<name>`.
pub fn counter(conn: &mut impl ConnectionLike, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("hblock").query(conn).expect("INFO");
    let field = format!("hblock_{name}:");
    info.lines()
        .find_map(|line| line.strip_prefix(&field))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO hblock:\n{info}"))
}

pub fn digest(conn: &mut impl ConnectionLike) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(conn)
        .expect("DEBUG DIGEST")
}

pub fn digest_value(conn: &mut impl ConnectionLike, key: &str) -> String {
    let v: Vec<String> = redis::cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg(key)
        .query(conn)
        .expect("DEBUG DIGEST-VALUE");
    v.into_iter().next().expect("one digest")
}

pub fn acquire(
    conn: &mut impl ConnectionLike,
    key: &str,
    owner: &str,
    opts: &[&str],
) -> Option<i64> {
    let mut cmd = redis::cmd("HBLOCK.ACQUIRE");
    cmd.arg(key).arg(owner);
    for o in opts {
        cmd.arg(*o);
    }
    cmd.query(conn).expect("HBLOCK.ACQUIRE")
}

/// A mix of every kind of record: held (short, binary and 1024-byte owners),
/// beaten, renewed with new terms, released, expired-and-seen, taken over.
pub fn mixed_workload(c: &mut impl ConnectionLike) {
    let long_owner = vec![b'L'; 1024];
    for (key, owner) in [
        (&b"w:held"[..], &b"alice"[..]),
        (b"w:bin", b"\0\xffbin\r\n"),
        (b"w:long", &long_owner),
    ] {
        let _: i64 = call(c, &[b"HBLOCK.ACQUIRE", key, owner, b"INTERVAL", b"600000"]).unwrap();
        let _: i64 = call(c, &[b"HBLOCK.BEAT", key, owner, b"1"]).unwrap();
    }
    let _: i64 = call(
        c,
        &[b"HBLOCK.ACQUIRE", b"w:held", b"alice", b"MISSES", b"9"],
    )
    .unwrap();
    let _: i64 = call(
        c,
        &[b"HBLOCK.ACQUIRE", b"w:free", b"bob", b"INTERVAL", b"600000"],
    )
    .unwrap();
    let _: i64 = call(c, &[b"HBLOCK.RELEASE", b"w:free", b"bob", b"1"]).unwrap();
    for key in [&b"w:expired"[..], b"w:taken"] {
        let _: i64 = call(
            c,
            &[
                b"HBLOCK.ACQUIRE",
                key,
                b"old",
                b"INTERVAL",
                b"10",
                b"MISSES",
                b"1",
            ],
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(25));
    let _ = call::<Value>(c, &[b"HBLOCK.BEAT", b"w:expired", b"old", b"1"]);
    let _: i64 = call(
        c,
        &[
            b"HBLOCK.ACQUIRE",
            b"w:taken",
            b"new",
            b"INTERVAL",
            b"600000",
        ],
    )
    .unwrap();
}

/// HBLOCK.INFO of a key without the fields that move with the clock.
pub fn stable_info(c: &mut impl ConnectionLike, key: &str) -> Vec<(String, Value)> {
    info(c, key)
        .expect("lock exists")
        .into_iter()
        .filter(|(name, _)| !["ttl", "age", "missed"].contains(&name.as_str()))
        .collect()
}

pub const WORKLOAD_KEYS: [&str; 6] = [
    "w:held",
    "w:bin",
    "w:long",
    "w:free",
    "w:expired",
    "w:taken",
];

/// A decimal integer as Redis parses it (no sign but '-', no spaces).
pub fn parse_plain_int(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.starts_with('+') || text.trim() != text || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// A field of `INFO <section>`.
pub fn info_field(c: &mut impl ConnectionLike, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(c).ok()?;
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

/// Waits until the replica is linked and has processed everything the
/// master sent.
pub fn wait_in_sync(master: &mut impl ConnectionLike, replica: &mut impl ConnectionLike) {
    let synced = eventually(Duration::from_secs(10), || {
        let up = info_field(replica, "replication", "master_link_status")? == "up";
        let m = info_field(master, "replication", "master_repl_offset")?;
        let r = info_field(replica, "replication", "slave_repl_offset")?;
        (up && m == r).then_some(())
    });
    assert!(synced.is_some(), "replica did not catch up");
}
