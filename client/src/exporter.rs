//! `hblock exporter`: a Prometheus endpoint (`GET /metrics`, served by the
//! `tiny_http` crate, each connection by its own thread, at most
//! `MAX_CONNECTIONS`). Each scrape costs every
//! server (every master of a cluster) one `INFO hblock`, one SCAN pass per
//! pattern (`TYPE hblock-lk`, `MATCH pattern`, never KEYS) and one pipelined
//! `HBLOCK.INFO` per exported lock, in batches. What it writes: metrics.rs.
//!
//! Redis errors never end the exporter: the node's `hblock_up` is 0 and its
//! lock series are left out of that scrape; stderr says why once when a
//! node's scrapes start failing and once when they recover.

use crate::commands::{parse_holders, parse_info, scan_lock_keys};
use crate::conn::{connection_name, Client, Conn};
use crate::error::Error;
use crate::log::Condition;
use crate::metrics::{render, LockSample, NodeSample, Scrape, CONTENT_TYPE};
use redis::{ConnectionAddr, RedisResult, Value};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Connecting and each reply: a hung server costs a scrape about twice this
/// (naming the connection, then `INFO hblock`), well within Prometheus's
/// default `scrape_timeout` of 10 s.
const REPLY_LIMIT: Duration = Duration::from_secs(2);
/// HBLOCK.INFOs per pipeline: 1000 kept other clients waiting up to 6 ms
/// (`hblock ls`'s measurement), 200 keeps each round trip short.
const INFO_BATCH: usize = 200;

/// `hblock exporter`'s options.
#[derive(Clone, Debug)]
pub struct ExporterOptions {
    /// `host:port` to listen on (port 0: any free port, printed on stderr).
    pub listen: String,
    /// SCAN MATCH patterns; empty: every lock.
    pub patterns: Vec<String>,
    /// At most this many locks (the first in key order), the rest counted
    /// in `hblock_locks_left_out`.
    pub max_locks: usize,
    /// The seed URLs when the target is a Redis Cluster.
    pub cluster: Option<Vec<String>>,
}

/// Connections with requests in progress at once, each served by its own
/// thread (its requests in order); a request on any further connection
/// gets a 503 at once.
const MAX_CONNECTIONS: usize = 8;
/// Each write of a reply to a scraper: one that does not read its replies
/// holds only its own connection's thread, this long per reply.
const WRITE_LIMIT: Duration = Duration::from_secs(2);

type Workers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<tiny_http::Request>>>>;

/// Serves until the process is stopped; returns 2 when ADDR cannot be
/// listened on.
pub fn serve(client: &Client, options: &ExporterOptions) -> i32 {
    let listener = match std::net::TcpListener::bind(options.listen.as_str()) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "hblock: exporter: cannot listen on {}: {err}",
                options.listen
            );
            return 2;
        }
    };
    // Accepted connections inherit the listening socket's send timeout
    // (Linux): tiny_http gives no other way to set it.
    set_send_timeout(&listener, WRITE_LIMIT);
    let server = match tiny_http::Server::from_listener(listener, None) {
        Ok(server) => server,
        Err(err) => {
            eprintln!(
                "hblock: exporter: cannot listen on {}: {err}",
                options.listen
            );
            return 2;
        }
    };
    let addr = server
        .server_addr()
        .to_ip()
        .map_or_else(|| options.listen.clone(), |a| a.to_string());
    eprintln!("hblock exporter: listening on http://{addr}/metrics");
    let shared = Arc::new(Shared {
        client: client.named(b"exporter"),
        options: options.clone(),
        last: Mutex::new(None),
        conditions: Mutex::default(),
    });
    let workers: Workers = Arc::default();
    // Answers 503 to requests beyond MAX_CONNECTIONS, off the accepting
    // thread.
    let (busy_tx, busy_rx) = mpsc::channel::<tiny_http::Request>();
    std::thread::spawn(move || {
        for request in busy_rx {
            let _ = request.respond(
                tiny_http::Response::from_string("busy: too many connections\n".to_string())
                    .with_status_code(503),
            );
        }
    });
    for request in server.incoming_requests() {
        let Some(peer) = request.remote_addr().copied() else {
            let _ = busy_tx.send(request);
            continue;
        };
        let mut map = workers.lock().unwrap_or_else(PoisonError::into_inner);
        let request = match map.get(&peer) {
            Some(tx) => match tx.send(request) {
                Ok(()) => continue,
                Err(mpsc::SendError(request)) => request,
            },
            None => request,
        };
        if map.len() >= MAX_CONNECTIONS {
            drop(map);
            let _ = busy_tx.send(request);
            continue;
        }
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(request);
        map.insert(peer, tx);
        drop(map);
        let shared = Arc::clone(&shared);
        let workers = Arc::clone(&workers);
        std::thread::spawn(move || connection_worker(&shared, &workers, peer, &rx));
    }
    0
}

/// What every connection's thread shares.
struct Shared {
    client: Client,
    options: ExporterOptions,
    /// The last scrape's text and when it started; its lock serializes
    /// scrapes.
    last: Mutex<Option<(Instant, String)>>,
    /// Per node (its label, or the URL): logged once when its scrapes start
    /// failing and once when they recover. Behind `last`'s lock.
    conditions: Mutex<HashMap<String, Condition>>,
}

/// Answers one connection's queued requests in order, then ends (the
/// connection's next request starts another thread).
fn connection_worker(
    shared: &Shared,
    workers: &Workers,
    peer: SocketAddr,
    rx: &mpsc::Receiver<tiny_http::Request>,
) {
    loop {
        let map = workers.lock().unwrap_or_else(PoisonError::into_inner);
        let Ok(request) = rx.try_recv() else {
            let mut map = map;
            map.remove(&peer);
            return;
        };
        drop(map);
        respond(shared, request);
    }
}

fn respond(shared: &Shared, request: tiny_http::Request) {
    let path = request.url().split('?').next().unwrap_or_default();
    let response = match path {
        "/metrics" => with_type(
            tiny_http::Response::from_string(metrics_text(shared)),
            CONTENT_TYPE,
        ),
        "/" => with_type(
            tiny_http::Response::from_string(
                "hblock exporter: the metrics are at /metrics\n".to_string(),
            ),
            "text/plain; charset=utf-8",
        ),
        _ => tiny_http::Response::from_string("not found\n".to_string()).with_status_code(404),
    };
    // A scraper that went away: nothing to do.
    let _ = request.respond(response);
}

/// A fresh scrape: scrapes run one at a time, and a request that waited
/// for another's scrape started after it arrived gets that scrape's text.
fn metrics_text(shared: &Shared) -> String {
    let arrived = Instant::now();
    let mut last = shared.last.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((at, text)) = last.as_ref() {
        if *at >= arrived {
            return text.clone();
        }
    }
    let at = Instant::now();
    let (scrape, whys) = scrape_why(&shared.client, &shared.options);
    let mut conditions = shared
        .conditions
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for (node, reason) in scrape.nodes.iter().zip(whys) {
        let name = node
            .node
            .clone()
            .unwrap_or_else(|| shared.client.url().to_string());
        let condition = conditions
            .entry(name.clone())
            .or_insert_with(|| Condition::new("exporter", &name));
        match reason {
            Some(reason) => condition.failed(&reason),
            None => condition.recovered(),
        }
    }
    drop(conditions);
    let text = render(&scrape);
    *last = Some((at, text.clone()));
    text
}

fn set_send_timeout(listener: &std::net::TcpListener, limit: Duration) {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(limit.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: 0,
    };
    // SAFETY: a valid socket descriptor and a timeval of the right size.
    let _ = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            std::ptr::addr_of!(tv).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>()).unwrap_or(0),
        )
    };
}

fn with_type(
    response: tiny_http::Response<std::io::Cursor<Vec<u8>>>,
    content_type: &str,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    match tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes()) {
        Ok(header) => response.with_header(header),
        Err(()) => response,
    }
}

/// One scrape of every node.
pub fn scrape(client: &Client, options: &ExporterOptions) -> Scrape {
    scrape_why(client, options).0
}

/// Why a node's scrape failed: the error and the client's hint.
fn why(err: redis::RedisError) -> String {
    let err = Error::Redis(err);
    let err = err.timed_out(REPLY_LIMIT).unwrap_or(err);
    match err.hint() {
        Some(hint) => format!("{err} ({hint})"),
        None => err.to_string(),
    }
}

/// One scrape of every node, and for each node (same order) why its
/// scrape failed (None: up).
fn scrape_why(client: &Client, options: &ExporterOptions) -> (Scrape, Vec<Option<String>>) {
    let started = Instant::now();
    let mut nodes: Vec<(NodeSample, Option<Conn>, BTreeSet<Vec<u8>>)> = Vec::new();
    let mut whys: Vec<Option<String>> = Vec::new();
    for (node, con) in connections(client, options) {
        let mut sample = NodeSample {
            node,
            ..NodeSample::default()
        };
        let mut con = match con {
            Ok(con) => con,
            Err(err) => {
                nodes.push((sample, None, BTreeSet::new()));
                whys.push(Some(why(err)));
                continue;
            }
        };
        match server_info(&mut con).and_then(|info| {
            let keys = match info {
                Some(_) => scan(&mut con, &options.patterns)?,
                None => BTreeSet::new(),
            };
            Ok((info, keys))
        }) {
            Ok((Some(info), keys)) => {
                sample.up = true;
                sample.info = info;
                nodes.push((sample, Some(con), keys));
                whys.push(None);
            }
            Ok((None, _)) => {
                nodes.push((sample, None, BTreeSet::new()));
                whys.push(Some(
                    "INFO hblock is empty: the hblock module is not loaded".to_string(),
                ));
            }
            Err(err) => {
                nodes.push((sample, None, BTreeSet::new()));
                whys.push(Some(why(err)));
            }
        }
    }
    // The first --max-locks keys in key order over all nodes are exported.
    let mut all: Vec<(&[u8], usize)> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, keys))| keys.iter().map(move |k| (k.as_slice(), i)))
        .collect();
    all.sort_unstable();
    let mut kept: Vec<Vec<Vec<u8>>> = vec![Vec::new(); nodes.len()];
    let mut left_out: Vec<u64> = vec![0; nodes.len()];
    for (n, (key, i)) in all.into_iter().enumerate() {
        if n < options.max_locks {
            if let Some(list) = kept.get_mut(i) {
                list.push(key.to_vec());
            }
        } else if let Some(count) = left_out.get_mut(i) {
            *count = count.saturating_add(1);
        }
    }
    let mut out = Vec::with_capacity(nodes.len());
    for ((((mut sample, con, _), keys), left_out), reason) in nodes
        .into_iter()
        .zip(kept)
        .zip(left_out)
        .zip(whys.iter_mut())
    {
        sample.left_out = left_out;
        if let Some(mut con) = con {
            match lock_infos(&mut con, &keys) {
                Ok(locks) => sample.locks = locks,
                Err(err) => {
                    *reason = Some(why(err));
                    sample = NodeSample {
                        node: sample.node,
                        ..NodeSample::default()
                    }
                }
            }
        }
        out.push(sample);
    }
    let scrape = Scrape {
        nodes: out,
        duration_seconds: started.elapsed().as_secs_f64(),
    };
    (scrape, whys)
}

/// The nodes to scrape and a connection to each: the server (no node
/// label), or every master of the cluster (`host:port`); when no seed node
/// answers, the seeds themselves, down.
fn connections(
    client: &Client,
    options: &ExporterOptions,
) -> Vec<(Option<String>, RedisResult<Conn>)> {
    let Some(seeds) = &options.cluster else {
        return vec![(None, client.connection_within(REPLY_LIMIT))];
    };
    let mut found = None;
    for seed in seeds {
        if let Ok(masters) = cluster_masters(seed) {
            found = Some((seed, masters));
            break;
        }
    }
    let Some((seed, masters)) = found else {
        return seeds
            .iter()
            .map(|seed| {
                let node = redis::Client::open(seed.as_str())
                    .map(|c| addr_label(c.get_connection_info().addr()))
                    .unwrap_or_else(|_| seed.clone());
                let err = redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no seed node answered CLUSTER NODES",
                ));
                (Some(node), Err(err))
            })
            .collect();
    };
    masters
        .into_iter()
        .map(|(host, port)| {
            let con = node_connection(seed, &host, port);
            (Some(format!("{host}:{port}")), con)
        })
        .collect()
}

fn addr_label(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

/// A connection to `host:port` with the seed URL's credentials and TLS.
fn node_connection(seed: &str, host: &str, port: u16) -> RedisResult<Conn> {
    let info = redis::Client::open(seed)?.get_connection_info().clone();
    let addr = match info.addr().clone() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure,
            tls_params,
        },
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    let mut con =
        redis::Client::open(info.set_addr(addr))?.get_connection_with_timeout(REPLY_LIMIT)?;
    con.set_read_timeout(Some(REPLY_LIMIT))?;
    con.set_write_timeout(Some(REPLY_LIMIT))?;
    // Named as on a single server; a refused SETNAME (an ACL) is ignored.
    let _ = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(connection_name(b"exporter"))
        .query::<Value>(&mut con);
    Ok(Conn::Single(con))
}

/// The masters `CLUSTER NODES` lists on `seed` (not failed, with an address).
fn cluster_masters(seed: &str) -> RedisResult<Vec<(String, u16)>> {
    let mut con = redis::Client::open(seed)?.get_connection_with_timeout(REPLY_LIMIT)?;
    con.set_read_timeout(Some(REPLY_LIMIT))?;
    let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con)?;
    Ok(parse_cluster_nodes(&text))
}

/// `CLUSTER NODES` lines: `id ip:port@cport[,hostname] flags ...`.
fn parse_cluster_nodes(text: &str) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            let flags: Vec<&str> = flags.split(',').collect();
            let master = flags.contains(&"master")
                && !flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "noaddr" | "handshake"));
            if !master {
                return None;
            }
            let addr = addr.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
            Some((host.to_string(), port))
        })
        .collect();
    out.sort();
    out
}

/// `INFO hblock`'s numeric fields (prefix removed), or None when the
/// section is empty: the module is not loaded.
fn server_info(con: &mut Conn) -> RedisResult<Option<Vec<(String, u64)>>> {
    let text: String = redis::cmd("INFO").arg("hblock").query(con)?;
    let fields: Vec<(String, u64)> = text
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            let name = name.strip_prefix("hblock_")?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect();
    Ok((!fields.is_empty()).then_some(fields))
}

/// Every lock key matching one of `patterns` (all when empty): one SCAN
/// pass per pattern with `TYPE hblock-lk`.
fn scan(con: &mut Conn, patterns: &[String]) -> RedisResult<BTreeSet<Vec<u8>>> {
    let mut keys = BTreeSet::new();
    if patterns.is_empty() {
        keys.extend(scan_lock_keys(con, None)?);
    }
    for pattern in patterns {
        // An empty pattern is every lock, as no pattern is.
        let pattern = (!pattern.is_empty()).then_some(pattern.as_str());
        keys.extend(scan_lock_keys(con, pattern)?);
    }
    Ok(keys)
}

/// `HBLOCK.INFO` of each key, pipelined in batches; keys gone (nil),
/// replaced by another type or moved since the SCAN are left out; any other
/// error reply fails the node's scrape (up 0), not just its lock.
fn lock_infos(con: &mut Conn, keys: &[Vec<u8>]) -> RedisResult<Vec<LockSample>> {
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(INFO_BATCH) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for key in batch {
            pipe.cmd("HBLOCK.INFO").arg(key.as_slice());
        }
        let replies: Vec<Value> = pipe.query(con)?;
        for (key, reply) in batch.iter().zip(replies) {
            let info = match reply {
                // Changed since the SCAN: replaced by another type, or
                // moved to another cluster node.
                Value::ServerError(err) if matches!(err.code(), "WRONGTYPE" | "MOVED" | "ASK") => {
                    None
                }
                // Any other error (an ACL's NOPERM, say) is the node's.
                Value::ServerError(err) => return Err(redis::RedisError::from(err)),
                reply => parse_info(reply)?,
            };
            if let Some(info) = info {
                out.push(LockSample {
                    key: key.clone(),
                    info,
                    holders: Vec::new(),
                });
            }
        }
    }
    add_holders(con, &mut out)?;
    Ok(out)
}

/// `HBLOCK.HOLDERS` of each lock of LIMIT > 1, pipelined in batches, for
/// one `hblock_lock_holder_info` series per holder. An error reply (a key
/// changed since, a module or ACL without HBLOCK.HOLDERS) leaves that
/// lock with INFO's holder, the lease that ends first.
fn add_holders(con: &mut Conn, locks: &mut [LockSample]) -> RedisResult<()> {
    let mut permits: Vec<&mut LockSample> = locks.iter_mut().filter(|l| l.info.limit > 1).collect();
    for batch in permits.chunks_mut(INFO_BATCH) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for lock in batch.iter() {
            pipe.cmd("HBLOCK.HOLDERS").arg(lock.key.as_slice());
        }
        let replies: Vec<Value> = pipe.query(con)?;
        for (lock, reply) in batch.iter_mut().zip(replies) {
            if let Ok(Some(holders)) = parse_holders(reply) {
                lock.holders = holders;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_nodes_masters_only() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 :0@0 master,noaddr - 0 0 4 connected
bad line
";
        assert_eq!(
            super::parse_cluster_nodes(text),
            vec![("127.0.0.1".into(), 7000), ("127.0.0.1".into(), 7001)]
        );
    }
}
