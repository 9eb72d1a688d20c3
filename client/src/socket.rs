//! A connection whose socket this crate holds (plain TCP, RESP2), for the
//! waiting ACQUIRE: the redis crate gives no way to close or poll a socket
//! it owns, so a waiter blocked on a master that hangs (SIGSTOP, a dead
//! host whose packets vanish) could not move after a failover until that
//! node answered again. Here the waiter polls its own socket in slices and
//! can look at Sentinel between them; closing it is dropping it.
//!
//! The handshake is the crate's: AUTH with the URL's user and password,
//! SELECT the database, then CLIENT SETNAME (a refused SETNAME is ignored).

use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ConnectionLike, ProtocolVersion, RedisError, RedisResult,
    Value,
};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Duration;

pub struct Socket {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    parser: redis::Parser,
    db: i64,
    open: bool,
}

fn io_error(kind: std::io::ErrorKind, what: &str) -> RedisError {
    RedisError::from(std::io::Error::new(kind, what.to_string()))
}

impl Socket {
    /// Connects within `limit` and does the handshake (each step within
    /// `limit`). None when the target needs what only the crate does (TLS,
    /// a Unix socket, RESP3): the caller uses a crate connection then.
    pub fn connect(
        info: &ConnectionInfo,
        name: Option<&str>,
        limit: Duration,
    ) -> RedisResult<Option<Socket>> {
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return Ok(None);
        };
        let settings = info.redis_settings();
        if settings.protocol() != ProtocolVersion::RESP2 {
            return Ok(None);
        }
        let limit = limit.max(Duration::from_millis(1));
        let mut last = None;
        let mut stream = None;
        for addr in (host.as_str(), *port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, limit) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(err) => last = Some(err),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(err)) => return Err(err.into()),
            (None, None) => {
                return Err(io_error(
                    std::io::ErrorKind::NotFound,
                    "the host name has no address",
                ))
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        let mut socket = Socket {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            parser: redis::Parser::new(),
            db: settings.db(),
            open: true,
        };
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            // WRONGPASS ... in the server's own words.
            auth.arg(password).query::<()>(&mut socket)?;
        }
        if settings.db() != 0 {
            redis::cmd("SELECT")
                .arg(settings.db())
                .query::<()>(&mut socket)?;
        }
        if let Some(name) = name {
            // A server error (an ACL without CLIENT, say) is ignored; a
            // failed connection is not.
            if let Err(err) = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(name)
                .query::<()>(&mut socket)
            {
                if err.code().is_none() {
                    return Err(err);
                }
            }
        }
        socket.writer.set_read_timeout(None)?;
        Ok(Some(socket))
    }

    /// Sends `cmd` without reading its reply.
    pub fn send(&mut self, cmd: &Cmd) -> RedisResult<()> {
        self.write(&cmd.get_packed_command())
    }

    fn write(&mut self, bytes: &[u8]) -> RedisResult<()> {
        if !self.open {
            return Err(io_error(
                std::io::ErrorKind::NotConnected,
                "connection closed",
            ));
        }
        self.writer.write_all(bytes).map_err(|err| {
            self.open = false;
            RedisError::from(err)
        })
    }

    /// Whether a reply (or the end of the connection) is there to read
    /// within `within`.
    pub fn readable_within(&self, within: Duration) -> RedisResult<bool> {
        if !self.reader.buffer().is_empty() {
            return Ok(true);
        }
        let ms = within.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fd = libc::pollfd {
            fd: self.writer.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd that lives for the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(err.into());
        }
        Ok(n > 0)
    }

    /// Reads one reply (server errors as `Value::ServerError`).
    pub fn recv(&mut self) -> RedisResult<Value> {
        if !self.open {
            return Err(io_error(
                std::io::ErrorKind::NotConnected,
                "connection closed",
            ));
        }
        // Fill the buffer first: a closed connection is an error, not an
        // empty reply.
        match self.reader.fill_buf() {
            Ok([]) => {
                self.open = false;
                return Err(io_error(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            Ok(_) => {}
            Err(err) => {
                self.open = false;
                return Err(err.into());
            }
        }
        self.parser.parse_value(&mut self.reader).inspect_err(|_| {
            // A timeout or a broken reply leaves the stream out of step.
            self.open = false;
        })
    }

    pub fn set_read_timeout(&self, limit: Option<Duration>) -> RedisResult<()> {
        Ok(self.writer.set_read_timeout(limit)?)
    }

    pub fn set_write_timeout(&self, limit: Option<Duration>) -> RedisResult<()> {
        Ok(self.writer.set_write_timeout(limit)?)
    }
}

impl ConnectionLike for Socket {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.write(cmd)?;
        self.recv()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.write(cmd)?;
        let mut replies = Vec::with_capacity(count);
        for i in 0..offset.saturating_add(count) {
            let reply = self.recv()?;
            if i >= offset {
                replies.push(reply);
            }
        }
        Ok(replies)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
