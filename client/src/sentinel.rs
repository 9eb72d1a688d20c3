//! Redis Sentinel: `redis+sentinel://` URLs and finding the master.
//!
//! `redis+sentinel://[user:password@]host:port[,host:port...]/mastername[/db]`
//! (`rediss+sentinel://` for TLS to the Sentinels and the data nodes). The
//! user and password are the data node's; Sentinel's own credentials, when
//! the Sentinels require them, go in the query: `?sentinel_password=...`
//! (and `sentinel_username=...`). Percent-encode reserved characters.
//!
//! The master is looked up with the redis crate's Sentinel client (ask each
//! Sentinel in turn for the master, then check with ROLE that the node is a
//! master) on every new connection, so after a failover the next connection
//! goes to the promoted replica. That lookup has no timeouts of its own (a
//! stopped Sentinel or master would hang it), so it runs in a thread of its
//! own and the caller gives up after a limit: a beat must fail within its
//! interval, not hang.

use crate::error::{on_data_node, on_sentinel};
use redis::{Connection, ConnectionAddr, ConnectionInfo, ErrorKind, RedisError, RedisResult};
use redis::{IntoConnectionInfo, RedisConnectionInfo};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The Sentinel port when a host is given without one.
pub const SENTINEL_PORT: u16 = 26379;

/// Where the locks live when Sentinel says where the master is.
#[derive(Clone)]
pub struct SentinelTarget {
    sentinels: Vec<ConnectionInfo>,
    master: String,
    /// The data nodes' credentials and database, and whether TLS is used.
    node_info: RedisConnectionInfo,
    tls: bool,
    /// A connection to one Sentinel, kept for the quick "which master?"
    /// question asked before every beat (shared by the clones).
    asker: Arc<Mutex<Option<(Connection, String)>>>,
}

/// `host:port` of a node address (how Sentinel names masters).
pub(crate) fn addr_text(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

/// True for the URL schemes this module parses.
pub fn is_sentinel_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("redis+sentinel://") || lower.starts_with("rediss+sentinel://")
}

fn invalid(detail: String) -> RedisError {
    RedisError::from((
        ErrorKind::InvalidClientConfig,
        "invalid redis+sentinel URL",
        format!(
            "{detail}; expected redis+sentinel://[user:password@]host:port[,host:port...]/mastername[/db][?sentinel_password=...]"
        ),
    ))
}

/// `%XX` escapes decoded (the rest as it is). Errors quote `text`, or name
/// `secret` instead (a password is never printed).
fn percent_decode_secret(text: &str, secret: &str) -> Result<String, RedisError> {
    percent_decode_as(text, Some(secret))
}

fn percent_decode(text: &str) -> Result<String, RedisError> {
    percent_decode_as(text, None)
}

fn percent_decode_as(text: &str, secret: Option<&str>) -> Result<String, RedisError> {
    let shown = match secret {
        Some(name) => format!("the {name}"),
        None => format!("{text:?}"),
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("bad %-escape in {shown}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("{shown} is not UTF-8 once decoded")))
}

/// How to reach `host:port` (a Sentinel or a data node), with `settings`
/// (credentials, database) and TLS or not.
fn connection_info(
    host_and_port: &str,
    tls: bool,
    settings: &RedisConnectionInfo,
) -> RedisResult<ConnectionInfo> {
    let (host, port) = host_port(host_and_port)?;
    let addr = if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    };
    Ok(addr
        .into_connection_info()?
        .set_redis_settings(settings.clone()))
}

/// `host:port`, `host` (port 26379) or `[v6]:port`.
fn host_port(text: &str) -> Result<(String, u16), RedisError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(format!("unclosed '[' in {text:?}")))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(invalid(format!("no host in {text:?}")));
    }
    let port = match port {
        None => SENTINEL_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid(format!("bad port in {text:?}")))?,
    };
    Ok((host.to_string(), port))
}

impl SentinelTarget {
    /// Parses a `redis+sentinel://` or `rediss+sentinel://` URL.
    pub fn parse(url: &str) -> RedisResult<SentinelTarget> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("no scheme".into()))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "redis+sentinel" => false,
            "rediss+sentinel" => true,
            other => return Err(invalid(format!("unknown scheme {other:?}"))),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (userinfo, hosts_and_path) = match rest.rsplit_once('@') {
            Some((userinfo, after)) => (Some(userinfo), after),
            None => (None, rest),
        };
        let (hosts, path) = hosts_and_path
            .split_once('/')
            .ok_or_else(|| invalid("no /mastername".into()))?;
        let mut path = path.split('/');
        let master = percent_decode(path.next().unwrap_or_default())?;
        if master.is_empty() {
            return Err(invalid("no master name".into()));
        }
        let db = match path.next().filter(|s| !s.is_empty()) {
            None => 0,
            Some(db) => db
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| invalid(format!("bad database number {db:?}")))?,
        };
        if path.any(|extra| !extra.is_empty()) {
            return Err(invalid("more than /mastername/db in the path".into()));
        }
        // The data node's credentials, database and TLS.
        let mut node_info = RedisConnectionInfo::default().set_db(db);
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let user = percent_decode(user)?;
            if !user.is_empty() {
                node_info = node_info.set_username(user);
            }
            if let Some(password) = password {
                node_info = node_info.set_password(percent_decode_secret(password, "password")?);
            }
        }
        // The Sentinels' own credentials, from the query.
        let mut sentinel_info = RedisConnectionInfo::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "sentinel_password" => {
                    sentinel_info = sentinel_info
                        .set_password(percent_decode_secret(value, "sentinel_password")?)
                }
                "sentinel_username" => {
                    sentinel_info = sentinel_info.set_username(percent_decode(value)?)
                }
                other => {
                    return Err(invalid(format!(
                        "unknown parameter {other:?} (known: sentinel_username, sentinel_password)"
                    )))
                }
            }
        }
        let mut sentinels = Vec::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            sentinels.push(connection_info(host, tls, &sentinel_info)?);
        }
        if sentinels.is_empty() {
            return Err(invalid("no Sentinel host".into()));
        }
        Ok(SentinelTarget {
            sentinels,
            master,
            node_info,
            tls,
            asker: Arc::new(Mutex::new(None)),
        })
    }

    /// `host:port` of the master the Sentinels name now
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`), asking one Sentinel after the
    /// other, all within `limit`. Cheap: one round trip on a kept
    /// connection. Before a failover ends this is still the old master; the
    /// full lookup (`master`) also checks the node's ROLE.
    pub fn named_master(&self, limit: Duration) -> RedisResult<String> {
        let limit = limit.max(Duration::from_millis(10));
        let deadline = std::time::Instant::now() + limit;
        let left = || deadline.saturating_duration_since(std::time::Instant::now());
        let mut slot = self
            .asker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Nil: this Sentinel monitors no master of that name. That is the
        // URL's fault, not a failover's (during one, Sentinel still names
        // the old master): a configuration error.
        let ask = |c: &mut Connection, sentinel: &str| -> RedisResult<String> {
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.master)
                .query(c)
                .map_err(|err| on_sentinel(sentinel, err))?;
            addr.map(|(host, port)| format!("{host}:{port}"))
                .ok_or_else(|| self.unknown_master(sentinel))
        };
        if let Some((c, sentinel)) = slot.as_mut() {
            let kept = (limit / 2).max(Duration::from_millis(50));
            let bounded = c
                .set_read_timeout(Some(kept))
                .and_then(|()| c.set_write_timeout(Some(kept)));
            let sentinel = sentinel.clone();
            match bounded.and_then(|()| ask(c, &sentinel)) {
                Ok(addr) => return Ok(addr),
                Err(_) => *slot = None,
            }
        }
        let mut last = None;
        let mut unknown = None;
        // Each Sentinel gets its share of the time (at least 100 ms), so one
        // that hangs does not use it all up.
        let count = u32::try_from(self.sentinels.len())
            .unwrap_or(u32::MAX)
            .max(1);
        let share = (limit / count).max(Duration::from_millis(100));
        for info in &self.sentinels {
            let budget = left().min(share);
            if budget < Duration::from_millis(1) {
                last = Some(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no Sentinel answered in time",
                )));
                break;
            }
            let sentinel = addr_text(info.addr());
            let attempt = redis::Client::open(info.clone())
                .and_then(|client| client.get_connection_with_timeout(budget))
                .map_err(|err| on_sentinel(&sentinel, err))
                .and_then(|mut c| {
                    c.set_read_timeout(Some(budget))?;
                    c.set_write_timeout(Some(budget))?;
                    let addr = ask(&mut c, &sentinel)?;
                    Ok((c, addr))
                });
            match attempt {
                Ok((c, addr)) => {
                    *slot = Some((c, sentinel));
                    return Ok(addr);
                }
                Err(err) if err.kind() == ErrorKind::InvalidClientConfig => unknown = Some(err),
                Err(err) => last = Some(err),
            }
        }
        // A Sentinel that answered and knows no such master outweighs
        // others that did not answer.
        Err(unknown.or(last).unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no Sentinel given"))
        }))
    }

    /// The error of a Sentinel that monitors no master of this name.
    fn unknown_master(&self, sentinel: &str) -> RedisError {
        RedisError::from((
            ErrorKind::InvalidClientConfig,
            "Sentinel",
            format!(
                "{sentinel}: monitors no master named {:?} (the name in the URL must be the one of `sentinel monitor`)",
                self.master
            ),
        ))
    }

    /// A client for the data node at `addr` (`host:port`, as Sentinel
    /// names nodes) with the URL's credentials, database and TLS.
    pub(crate) fn node_client(&self, addr: &str) -> RedisResult<redis::Client> {
        redis::Client::open(connection_info(addr, self.tls, &self.node_info)?)
    }

    /// The master's name in Sentinel.
    pub fn master_name(&self) -> &str {
        &self.master
    }

    /// A client for the current master, as the Sentinels see it, within
    /// `limit`: the address `named_master` gives (each Sentinel its share of
    /// the time, so a hung one does not stall the others), then the node's
    /// ROLE, which must say master (a node Sentinel still names while it is
    /// being demoted, or not yet promoted, is refused: ask again).
    pub fn master(&self, limit: Duration) -> RedisResult<redis::Client> {
        let started = std::time::Instant::now();
        let addr = self.named_master(limit)?;
        let left = limit
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(10));
        let client = self.node_client(&addr)?;
        let mut c = client
            .get_connection_with_timeout(left)
            .map_err(|err| on_data_node(&addr, err))?;
        c.set_read_timeout(Some(left))?;
        c.set_write_timeout(Some(left))?;
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query(&mut c)
            .map_err(|err| on_data_node(&addr, err))?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r.as_slice() == b"master" => Ok(client),
            _ => Err(RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "the node Sentinel names is not a master (yet)",
                format!("{addr} for {:?}", self.master),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(t: &SentinelTarget) -> Vec<String> {
        t.sentinels.iter().map(|c| c.addr().to_string()).collect()
    }

    #[test]
    fn urls_name_sentinels_master_db_and_credentials() {
        let t = SentinelTarget::parse(
            "redis+sentinel://app:p%40ss@127.0.0.1:26379,h2,[::1]:5/mymaster/3?sentinel_password=s3",
        )
        .unwrap();
        assert_eq!(
            addrs(&t),
            ["127.0.0.1:26379", "h2:26379", "::1:5"],
            "hosts, default port"
        );
        assert_eq!(t.master_name(), "mymaster");
        let s = t.sentinels[0].redis_settings();
        assert_eq!((s.username(), s.password()), (None, Some("s3")));
        let t = SentinelTarget::parse("redis+sentinel://h:1/m").unwrap();
        assert_eq!(t.sentinels[0].redis_settings().password(), None);
        assert!(SentinelTarget::parse("rediss+sentinel://h:1/m").is_ok());
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("redis+sentinel://h:1", "no /mastername"),
            ("redis+sentinel://h:1/", "no master name"),
            ("redis+sentinel:///m", "no Sentinel host"),
            ("redis+sentinel://h:x/m", "bad port"),
            ("redis+sentinel://h:1/m/-1", "bad database"),
            ("redis+sentinel://h:1/m/0/x", "more than"),
            ("redis+sentinel://h:1/m?password=x", "unknown parameter"),
            (
                "redis+sentinel://u:%zz@h:1/m",
                "bad %-escape in the password",
            ),
            (
                "redis+sentinel://u:S3cr%C3%28t@h:1/m",
                "the password is not UTF-8",
            ),
            (
                "redis+sentinel://h:1/m?sentinel_password=Top%zzSecret",
                "in the sentinel_password",
            ),
        ] {
            let Err(err) = SentinelTarget::parse(url) else {
                panic!("{url} parsed");
            };
            assert_eq!(err.kind(), ErrorKind::InvalidClientConfig, "{url}");
            assert!(err.to_string().contains(says), "{url}: {err}");
            for secret in ["S3cr", "Top%zz", "%zz"] {
                assert!(!err.to_string().contains(secret), "{url} printed: {err}");
            }
        }
        assert!(is_sentinel_url("REDIS+SENTINEL://h/m"));
        assert!(!is_sentinel_url("redis://h:1"));
    }
}
