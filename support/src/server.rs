//! The test server: a real `redis-server --loadmodule` on a free loopback
//! port, in its own temp dir, killed and reaped on drop. The log is printed
//! when the test that owns it fails.
//!
//! `SERVER_BIN` overrides the server binary (default `redis-server`),
//! `HBLOCK_MODULE` the module (default `target/release/libhblock.so`).

use crate::eventually;
use redis::Connection;
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
    /// The server binary, instead of `SERVER_BIN` (the bench runs Valkey
    /// next to Redis).
    pub binary: Option<String>,
    /// The port to take when it is free (else a free one, as usual).
    pub port: Option<u16>,
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

    /// Starts on `port` if it is free (a process squatting the port of a
    /// stopped node, as another test's server may).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn binary(mut self, path: &str) -> Self {
        self.binary = Some(path.into());
        self
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
    /// While stopped on purpose: sockets bound (not listening) to its port
    /// (and cluster bus port), so that no other test's server takes them
    /// while clients, replicas or Sentinels still try that address: they
    /// get "connection refused", as from a dead server.
    reserved: Vec<socket2::Socket>,
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
            port: options.port.unwrap_or(0),
            options,
            reserved: Vec::new(),
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
        self.reserved.clear();
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
            let binary = self.options.binary.clone().unwrap_or_else(server_bin);
            let mut cmd = Command::new(binary);
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
                if redis::cmd("PING").query::<String>(&mut conn).is_err() {
                    std::thread::sleep(Duration::from_millis(10));
                    continue; // not listening yet, or loading
                }
                // Ours, not another test's server that took the port between
                // the free check and our bind (ours then exits, see above).
                let pid = crate::process_id(&mut conn);
                if pid.is_some() && pid == self.pid() {
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

    /// A connection authenticated as ACL user `user` with `password`.
    pub fn conn_as(&self, user: &str, password: &str) -> Connection {
        let url = self
            .url()
            .replace("redis://", &format!("redis://{user}:{password}@"));
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect as user")
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
            self.reserve_ports();
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

    /// Stops the server at once (SIGKILL), as when it crashes, without
    /// restarting it. Its port stays reserved until it starts again (or
    /// [`Server::release_port`]).
    pub fn stop(&mut self) {
        self.kill();
        self.reserve_ports();
    }

    /// Lets another process take the stopped server's port (a test that
    /// puts a squatter there on purpose).
    pub fn release_port(&mut self) {
        self.reserved.clear();
    }

    /// Binds, without listening, the port (and the cluster bus port) of a
    /// server no longer running. Redis cannot bind it then, and
    /// bind(port 0) does not hand it out; connecting is refused.
    fn reserve_ports(&mut self) {
        let mut ports = vec![self.port];
        if self.options.cluster_node {
            ports.push(self.port.saturating_add(10_000));
        }
        for port in ports {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None);
            if let Ok(socket) = socket {
                if socket.bind(&addr.into()).is_ok() {
                    self.reserved.push(socket);
                }
            }
        }
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
