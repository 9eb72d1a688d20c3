//! Where the locks live and how to connect: one server, a Redis Cluster, or
//! the master a set of Sentinels names (looked up for every new connection).

use crate::error::on_data_node;
use crate::sentinel::{addr_text, is_sentinel_url, SentinelTarget};
use crate::socket::Socket;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{
    Cmd, Connection, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo,
    RedisError, RedisResult, Value,
};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// Where the locks live: one Redis server, a Redis Cluster given by a few
/// of its nodes (the client follows MOVED redirects and failovers), or the
/// master Sentinel names (asked again for every connection).
#[derive(Clone)]
enum Target {
    Single(Box<redis::Client>),
    Cluster(Vec<String>),
    Sentinel(Box<SentinelTarget>),
}

/// How long a connection without a response timeout may take to find the
/// master through Sentinel, connect and say hello.
const SENTINEL_LOOKUP_LIMIT: Duration = Duration::from_secs(5);

/// How long a short exchange (the thin commands, `run --no-wait`'s
/// ACQUIRE) may wait for a reply: a hung server fails it after this.
pub const REPLY_LIMIT: Duration = Duration::from_secs(5);

/// How long the holder lookup of a waiting or not-granted line may take.
pub const LOOKUP_LIMIT: Duration = Duration::from_secs(2);

/// The longest owner part of a connection name, in bytes.
const NAME_MAX: usize = 128;

/// A Redis connection source for the heartbeat and the waiter.
#[derive(Clone)]
pub struct Client {
    target: Target,
    /// The URL(s) as given, password masked: for messages.
    url: String,
    /// `CLIENT SETNAME` of every data-node connection (see [`connection_name`]).
    name: Option<String>,
}

/// `hblock:<owner>` as Redis accepts it for `CLIENT SETNAME`: bytes outside
/// `!`..`~` (spaces, newlines, non-ASCII) become `_`, and an owner longer
/// than 128 bytes is cut in the middle (`..`), so its end (a run's unique
/// `/xxxxxxxx`) stays.
pub fn connection_name(owner: &[u8]) -> String {
    const TAIL: usize = 9;
    let kept: Vec<u8> = if owner.len() > NAME_MAX {
        let head = NAME_MAX - TAIL - 2;
        let tail = owner.iter().skip(owner.len() - TAIL);
        owner
            .iter()
            .take(head)
            .chain(b"..")
            .chain(tail)
            .copied()
            .collect()
    } else {
        owner.to_vec()
    };
    let mut name = String::from("hblock:");
    name.extend(kept.iter().map(|&b| {
        if (b'!'..=b'~').contains(&b) {
            char::from(b)
        } else {
            '_'
        }
    }));
    name
}

/// A connection to a single server, to a cluster, or to the master Sentinel
/// named when it was made (its `host:port`).
pub enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
    Sentinel(Connection, String),
    /// A socket this crate holds (the waiting ACQUIRE, see `socket.rs`);
    /// with the master's `host:port` when found through Sentinel.
    Socket(Box<Socket>, Option<String>),
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c, _) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Socket(c, _) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Sentinel(c, _) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Socket(c, _) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Sentinel(c, _) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
            Conn::Socket(c, _) => c.req_command(cmd),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Sentinel(c, _) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Socket(c, _) => c.get_db(),
        }
    }
    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Sentinel(c, _) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
            Conn::Socket(c, _) => c.check_connection(),
        }
    }
    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Sentinel(c, _) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
            Conn::Socket(c, _) => c.is_open(),
        }
    }
}

/// How long a heartbeat waits for a reply (see `connection_for_beats`).
fn beat_limit(interval: Duration, watching: bool) -> Duration {
    let limit = interval.max(Duration::from_millis(50));
    if watching {
        limit.saturating_mul(2)
    } else {
        limit
    }
}

impl Conn {
    /// Read and write timeouts for a heartbeat (`Client::connection_for_beats`).
    pub(crate) fn set_beat_timeouts(&self, interval: Duration, watching: bool) -> RedisResult<()> {
        let limit = Some(beat_limit(interval, watching));
        match self {
            Conn::Single(c) | Conn::Sentinel(c, _) => {
                c.set_read_timeout(limit)?;
                c.set_write_timeout(limit)
            }
            Conn::Cluster(c) => {
                c.set_read_timeout(limit)?;
                c.set_write_timeout(limit)
            }
            Conn::Socket(c, _) => {
                c.set_read_timeout(limit)?;
                c.set_write_timeout(limit)
            }
        }
    }
}

/// The URL's connection settings without the crate's CLIENT SETINFO
/// handshake: on a hung server each of its replies would wait the whole
/// reply limit before the first command does.
fn without_lib_name(url: &str) -> RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    Ok(info.set_redis_settings(settings))
}

impl Client {
    /// `redis://[user:password@]host:port/[db]`, or `rediss://` for TLS; or
    /// `redis+sentinel://[user:password@]host:port[,host:port...]/mastername[/db]`
    /// (see [`crate::sentinel`]).
    pub fn open(url: &str) -> RedisResult<Client> {
        let target = if is_sentinel_url(url) {
            Target::Sentinel(Box::new(SentinelTarget::parse(url)?))
        } else {
            Target::Single(Box::new(redis::Client::open(without_lib_name(url)?)?))
        };
        Ok(Client {
            target,
            url: crate::output::mask_password(url),
            name: None,
        })
    }

    /// A Redis Cluster, from the URLs of one or more of its nodes.
    pub fn open_cluster(urls: &[String]) -> RedisResult<Client> {
        ClusterClient::new(urls.to_vec())?; // validates the URLs
        let masked: Vec<String> = urls
            .iter()
            .map(|u| crate::output::mask_password(u))
            .collect();
        Ok(Client {
            target: Target::Cluster(urls.to_vec()),
            url: masked.join(","),
            name: None,
        })
    }

    /// The URL(s) this client was opened with, passwords masked (`***`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This client with its data-node connections named
    /// [`connection_name`]`(owner)` (`CLIENT SETNAME hblock:<owner>`; not
    /// on a cluster). [`Client::acquire`] names the lease's connections
    /// after its owner by itself.
    pub fn named(&self, owner: &[u8]) -> Client {
        Client {
            name: Some(connection_name(owner)),
            ..self.clone()
        }
    }

    /// This client, named `hblock:<what>` unless it has a name already.
    pub(crate) fn named_or(&self, what: &str) -> Client {
        match self.name {
            Some(_) => self.clone(),
            None => self.named(what.as_bytes()),
        }
    }

    /// `CLIENT SETNAME` on a new connection; a refusal (an ACL without
    /// CLIENT, say) is ignored; no reply at all (a hung server) fails the
    /// connection, so it costs one reply limit, not two.
    fn name_connection(&self, con: &mut Connection) -> RedisResult<()> {
        if let Some(name) = &self.name {
            match redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(name)
                .query::<Value>(con)
            {
                Err(err) if err.code().is_none() => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }

    /// A connection without a response timeout (blocking ACQUIRE may wait long).
    pub fn connection(&self) -> RedisResult<Conn> {
        match &self.target {
            Target::Single(client) => {
                let mut con = client.get_connection()?;
                self.name_connection(&mut con)?;
                Ok(Conn::Single(con))
            }
            Target::Cluster(urls) => {
                let con = ClusterClient::new(urls.clone())?.get_connection()?;
                con.set_read_timeout(None)?;
                Ok(Conn::Cluster(Box::new(con)))
            }
            Target::Sentinel(sentinel) => {
                let master = sentinel.master(SENTINEL_LOOKUP_LIMIT)?;
                let addr = addr_text(master.get_connection_info().addr());
                let mut con = master
                    .get_connection_with_timeout(SENTINEL_LOOKUP_LIMIT)
                    .map_err(|err| on_data_node(&addr, err))?;
                con.set_read_timeout(None)?;
                con.set_write_timeout(None)?;
                self.name_connection(&mut con)?;
                Ok(Conn::Sentinel(con, addr))
            }
        }
    }

    /// A connection for one short exchange (INFO, RELEASE): connecting and
    /// every reply within `limit`, so a hung server costs `limit`, not
    /// forever.
    pub fn connection_within(&self, limit: Duration) -> RedisResult<Conn> {
        self.connection_for_beats(limit, false)
    }

    /// The connection a blocking ACQUIRE waits on: a socket this crate
    /// holds when it can (plain TCP, RESP2), so the wait can be watched and
    /// ended (see [`Client::wait_reply`]); a crate connection otherwise.
    pub(crate) fn waiting_connection(&self, limit: Duration) -> RedisResult<Conn> {
        let limit = limit.min(limit);
        let name = self.name.as_deref();
        match &self.target {
            Target::Single(client) => {
                match Socket::connect(client.get_connection_info(), name, limit)? {
                    Some(socket) => Ok(Conn::Socket(Box::new(socket), None)),
                    None => self.connection(),
                }
            }
            Target::Sentinel(sentinel) => {
                let master = sentinel.master(limit)?;
                let addr = addr_text(master.get_connection_info().addr());
                let socket = Socket::connect(master.get_connection_info(), name, limit)
                    .map_err(|err| on_data_node(&addr, err))?;
                match socket {
                    Some(socket) => Ok(Conn::Socket(Box::new(socket), Some(addr))),
                    None => self.connection(),
                }
            }
            Target::Cluster(_) => self.connection(),
        }
    }

    /// Sends `cmd` (a blocking ACQUIRE) on `con` and waits for its one
    /// reply, without limit. On a socket this crate holds it sends a PING
    /// first: once PONG is back, `on_queued` is called (the command is
    /// queued on the server; a loading server answers LOADING to both, an
    /// error); it waits in slices, and through Sentinel, between
    /// slices (every `every`) it asks whether the master moved, and if so
    /// closes the connection and fails with a transient error, so the
    /// caller queues again on the new master, also when the old one hangs
    /// and answers nothing. Only a change of master ends the wait: the
    /// place in the queue is kept while the master stays. On other
    /// connections `on_queued` is called at once and a thread follows the
    /// master ([`Client::follow_master`]).
    pub(crate) fn wait_reply(
        &self,
        con: &mut Conn,
        cmd: &Cmd,
        every: Duration,
        deadline: Option<std::time::Instant>,
        on_queued: &mut dyn FnMut(),
    ) -> RedisResult<Value> {
        let Conn::Socket(socket, addr) = con else {
            on_queued();
            let following = self.follow_master(con, every);
            let reply = con.req_command(cmd);
            drop(following);
            return reply;
        };
        // A PING first (one reply at a time: the parser may read ahead):
        // its PONG says the server runs commands (a server still loading
        // answers LOADING), so the command sent next is queued; no reply in
        // a while says nothing.
        socket.send(&redis::cmd("PING"))?;
        let mut queued = false;
        let started = std::time::Instant::now();
        loop {
            let slice = match deadline {
                Some(end) => {
                    let left = end.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        // A hung server: transient, like any timeout.
                        return Err(RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("timed out after {} ms", started.elapsed().as_millis()),
                        )));
                    }
                    every.min(left)
                }
                None => every,
            };
            if socket.readable_within(slice)? {
                if queued {
                    return socket.recv();
                }
                socket.recv()?.extract_error()?;
                socket.send(cmd)?;
                queued = true;
                on_queued();
                continue;
            }
            if let Some(addr) = addr.as_deref() {
                if self.moved_from(addr, every) {
                    return Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        format!("the master moved: Sentinel no longer names {addr}"),
                    )));
                }
            }
        }
    }

    /// A connection for a heartbeat: a beat that takes longer than an
    /// interval fails. `watching`: it also waits in HBLOCK.WATCH for up to
    /// an interval between beats (a bound lease), so replies may take two.
    pub(crate) fn connection_for_beats(
        &self,
        interval: Duration,
        watching: bool,
    ) -> RedisResult<Conn> {
        let limit = beat_limit(interval, watching);
        match &self.target {
            Target::Single(client) => {
                let mut con = client.get_connection_with_timeout(limit)?;
                con.set_read_timeout(Some(limit))?;
                con.set_write_timeout(Some(limit))?;
                self.name_connection(&mut con)?;
                let con = Conn::Single(con);
                con.set_beat_timeouts(interval, watching)?;
                Ok(con)
            }
            Target::Cluster(urls) => {
                // A fresh slot map each time: after a failover the beats go
                // to the promoted replica.
                let con = ClusterClient::builder(urls.clone())
                    .connection_timeout(limit)
                    .response_timeout(limit)
                    .retries(1)
                    .build()?
                    .get_connection()?;
                Ok(Conn::Cluster(Box::new(con)))
            }
            Target::Sentinel(sentinel) => {
                // The lookup and the connection share the beat's limit.
                let started = std::time::Instant::now();
                let master = sentinel.master(limit)?;
                let left = limit
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(10));
                let addr = addr_text(master.get_connection_info().addr());
                let mut con = master
                    .get_connection_with_timeout(left)
                    .map_err(|err| on_data_node(&addr, err))?;
                con.set_read_timeout(Some(limit))?;
                con.set_write_timeout(Some(limit))?;
                self.name_connection(&mut con)?;
                let con = Conn::Sentinel(con, addr);
                con.set_beat_timeouts(interval, watching)?;
                Ok(con)
            }
        }
    }

    /// True when `con` goes to a node the Sentinels no longer name as the
    /// master (asked within `limit`): after a failover, even a planned one
    /// that leaves the old master up and accepting writes for a while, the
    /// caller must reconnect. False for other targets, and when no Sentinel
    /// answers (keep using the connection: a Sentinel outage is not a
    /// failover).
    pub fn moved(&self, con: &Conn, limit: Duration) -> bool {
        match con {
            Conn::Sentinel(_, addr) | Conn::Socket(_, Some(addr)) => self.moved_from(addr, limit),
            _ => false,
        }
    }

    /// As `moved`, for a connection to `addr` (`host:port`).
    pub(crate) fn moved_from(&self, addr: &str, limit: Duration) -> bool {
        let Target::Sentinel(sentinel) = &self.target else {
            return false;
        };
        sentinel
            .named_master(limit)
            .is_ok_and(|named| named != addr)
    }

    /// While `con` (to a Sentinel-named master) waits in a blocking ACQUIRE,
    /// a thread asks the Sentinels every `every` whether the master moved;
    /// when it has, it closes the waiting connection on the old master
    /// (`CLIENT KILL ID`), so the waiter queues again on the new one
    /// instead of waiting where no grant counts. Dropping the returned
    /// sender stops the thread. None for other connections (or when the
    /// connection's id cannot be read).
    pub(crate) fn follow_master(&self, con: &mut Conn, every: Duration) -> Option<Sender<()>> {
        let (Target::Sentinel(sentinel), Conn::Sentinel(c, addr)) = (&self.target, con) else {
            return None;
        };
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(c).ok()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let (client, sentinel, addr) = (self.clone(), sentinel.clone(), addr.clone());
        std::thread::Builder::new()
            .name("hblock follow master".into())
            .spawn(move || loop {
                if !matches!(stopped.recv_timeout(every), Err(RecvTimeoutError::Timeout)) {
                    return; // the ACQUIRE returned
                }
                if client.moved_from(&addr, every) {
                    // Best effort, tried again at the next look until the
                    // ACQUIRE returns: without the right to CLIENT KILL,
                    // the waiter moves when the old master is demoted.
                    let _ = sentinel.node_client(&addr).and_then(|old| {
                        let mut c = old.get_connection_with_timeout(every)?;
                        c.set_read_timeout(Some(every))?;
                        redis::cmd("CLIENT")
                            .arg("KILL")
                            .arg("ID")
                            .arg(id)
                            .query::<redis::Value>(&mut c)
                    });
                }
            })
            .ok()?;
        Some(stop)
    }

    /// Whether connections are found through Sentinel.
    pub fn is_sentinel(&self) -> bool {
        matches!(self.target, Target::Sentinel(_))
    }

    /// Why `key` is not granted now (one HBLOCK.INFO on a new connection):
    /// held by another owner, held back after a failover
    /// ([`crate::NotGranted::HeldBack`]), free, or missing.
    pub fn not_granted(
        &self,
        key: &str,
    ) -> Result<crate::commands::NotGranted, crate::error::Error> {
        self.not_granted_within(key, LOOKUP_LIMIT)
    }

    /// As [`Client::not_granted`], within `limit` (a timeout reads `timed
    /// out after N ms`).
    pub fn not_granted_within(
        &self,
        key: &str,
        limit: Duration,
    ) -> Result<crate::commands::NotGranted, crate::error::Error> {
        let found = self
            .named_or("info")
            .connection_within(limit)
            .and_then(|mut con| crate::commands::info(&mut con, key))
            .map_err(crate::error::Error::from);
        match found {
            Ok(info) => Ok(crate::commands::NotGranted::from_info(info.as_ref())),
            Err(err) => Err(err.timed_out(limit).unwrap_or(err)),
        }
    }
}

/// One master a listing reads: its `host:port` and a connection whose
/// replies come within a limit.
pub struct Node {
    pub addr: String,
    pub con: Conn,
}

impl Client {
    /// A connection to every master that holds keys, for reading all of
    /// them (`hblock ls`, the exporter): the one server; the master
    /// Sentinel names; on a cluster every master that serves slots
    /// (`CLUSTER NODES`, asked of the given nodes in turn), each reached
    /// directly with the first URL's user, password and TLS settings.
    /// Connecting and every reply within `limit`.
    pub fn master_connections(&self, limit: Duration) -> RedisResult<Vec<Node>> {
        match &self.target {
            Target::Single(client) => {
                let addr = addr_text(client.get_connection_info().addr());
                let con = self.named_or("ls").connection_within(limit)?;
                Ok(vec![Node { addr, con }])
            }
            Target::Sentinel(_) => match self.named_or("ls").connection_within(limit)? {
                Conn::Sentinel(con, addr) => Ok(vec![Node {
                    addr: addr.clone(),
                    con: Conn::Sentinel(con, addr),
                }]),
                con => Ok(vec![Node {
                    addr: self.url.clone(),
                    con,
                }]),
            },
            Target::Cluster(urls) => {
                let (base, masters) = cluster_masters(urls, limit)?;
                masters
                    .into_iter()
                    .map(|(host, port)| {
                        let addr = match base.addr() {
                            ConnectionAddr::TcpTls {
                                insecure,
                                tls_params,
                                ..
                            } => ConnectionAddr::TcpTls {
                                host: host.clone(),
                                port,
                                insecure: *insecure,
                                tls_params: tls_params.clone(),
                            },
                            _ => ConnectionAddr::Tcp(host.clone(), port),
                        };
                        let text = addr_text(&addr);
                        let con = direct_connection(base.clone().set_addr(addr), limit)
                            .map_err(|err| on_data_node(&text, err))?;
                        Ok(Node {
                            addr: text,
                            con: Conn::Single(con),
                        })
                    })
                    .collect()
            }
        }
    }
}

/// A plain connection to one node, connecting and every reply within `limit`.
fn direct_connection(info: ConnectionInfo, limit: Duration) -> RedisResult<Connection> {
    let con = redis::Client::open(info)?.get_connection_with_timeout(limit)?;
    con.set_read_timeout(Some(limit))?;
    con.set_write_timeout(Some(limit))?;
    Ok(con)
}

/// The first URL's connection settings and the masters that serve slots,
/// from `CLUSTER NODES` of the first given node that answers (the last
/// error when none does).
fn cluster_masters(
    urls: &[String],
    limit: Duration,
) -> RedisResult<(ConnectionInfo, Vec<(String, u16)>)> {
    let mut infos = urls.iter().map(|u| u.as_str().into_connection_info());
    let base = match infos.next() {
        Some(info) => info?,
        None => {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "no cluster node given",
            )))
        }
    };
    let mut last = None;
    for info in std::iter::once(Ok(base.clone())).chain(infos) {
        let info = info?;
        let asked = addr_text(info.addr());
        let nodes = direct_connection(info, limit)
            .and_then(|mut con| redis::cmd("CLUSTER").arg("NODES").query::<String>(&mut con));
        match nodes {
            Ok(text) => {
                let host = asked.rsplit_once(':').map_or("", |(h, _)| h);
                return Ok((base, masters_with_slots(&text, host)));
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last
        .unwrap_or_else(|| RedisError::from((redis::ErrorKind::Io, "no cluster node answered"))))
}

/// `(host, port)` of every master in a `CLUSTER NODES` reply that serves
/// slots (a master without slots holds no keys; after a failover the old
/// master has none). A node that does not know its own IP yet (empty
/// host) is `asked_host`, the node that answered.
fn masters_with_slots(nodes: &str, asked_host: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            let master = flags.split(',').any(|f| f == "master");
            if !master || fields.len() <= 8 {
                return None;
            }
            // ip:port@cport[,hostname]
            let ip_port = address.split(['@', ',']).next()?;
            let (host, port) = ip_port.rsplit_once(':')?;
            let host = if host.is_empty() { asked_host } else { host };
            Some((host.to_string(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_give_the_masters_with_slots() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,host-b master - 0 1 2 connected 5461-10922 [10923->-c3]
c3 :7003@17003 master - 0 1 3 connected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
e5 127.0.0.1:7005@17005 master,fail - 0 1 0 disconnected
";
        assert_eq!(
            masters_with_slots(nodes, "10.0.0.9"),
            vec![
                ("127.0.0.1".to_string(), 7001),
                ("127.0.0.1".to_string(), 7002),
                ("10.0.0.9".to_string(), 7003),
            ]
        );
        assert!(masters_with_slots("garbage\n\n", "h").is_empty());
    }

    #[test]
    fn connection_names_are_what_redis_accepts() {
        assert_eq!(connection_name(b"web-1/4f3a"), "hblock:web-1/4f3a");
        assert_eq!(connection_name(b"a b\nc\xffd~"), "hblock:a_b_c_d~");
        let long = connection_name(&[b'x'; 300]);
        assert_eq!(long.len(), "hblock:".len() + NAME_MAX);
        assert!(long.bytes().all(|b| (b'!'..=b'~').contains(&b)));
        let mut owner = vec![b'y'; 200];
        owner.extend_from_slice(b"/4f3a9c01");
        let name = connection_name(&owner);
        assert_eq!(name.len(), "hblock:".len() + NAME_MAX);
        assert!(name.ends_with("y../4f3a9c01"), "{name}");
    }
}
