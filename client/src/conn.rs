//! Where the locks live and how to connect: one server or a Redis Cluster.

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, Connection, ConnectionLike, RedisResult, Value};
use std::time::Duration;

/// Where the locks live: one Redis server, or a Redis Cluster given by a few
/// of its nodes (the client follows MOVED redirects and failovers).
#[derive(Clone)]
enum Target {
    Single(Box<redis::Client>),
    Cluster(Vec<String>),
}

/// A Redis connection source for the heartbeat and the waiter.
#[derive(Clone)]
pub struct Client {
    target: Target,
}

/// A connection to a single server or to a cluster.
pub enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
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
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }
    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
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
            Conn::Single(c) => {
                c.set_read_timeout(limit)?;
                c.set_write_timeout(limit)
            }
            Conn::Cluster(c) => {
                c.set_read_timeout(limit)?;
                c.set_write_timeout(limit)
            }
        }
    }
}

impl Client {
    /// `redis://[user:password@]host:port/[db]`, or `rediss://` for TLS.
    pub fn open(url: &str) -> RedisResult<Client> {
        Ok(Client {
            target: Target::Single(Box::new(redis::Client::open(url)?)),
        })
    }

    /// A Redis Cluster, from the URLs of one or more of its nodes.
    pub fn open_cluster(urls: &[String]) -> RedisResult<Client> {
        ClusterClient::new(urls.to_vec())?; // validates the URLs
        Ok(Client {
            target: Target::Cluster(urls.to_vec()),
        })
    }

    /// A connection without a response timeout (blocking ACQUIRE may wait long).
    pub fn connection(&self) -> RedisResult<Conn> {
        match &self.target {
            Target::Single(client) => Ok(Conn::Single(client.get_connection()?)),
            Target::Cluster(urls) => {
                let con = ClusterClient::new(urls.clone())?.get_connection()?;
                con.set_read_timeout(None)?;
                Ok(Conn::Cluster(Box::new(con)))
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
                let con = Conn::Single(client.get_connection_with_timeout(limit)?);
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
        }
    }
}
