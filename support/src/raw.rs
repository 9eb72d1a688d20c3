//! The one RESP codec of the tests: a raw connection (commands out, replies
//! in; one fd per connection, so 10,000 of them fit the fd limit), the
//! encoder and two reply readers (`read_reply` checks errors only,
//! `read_value` keeps the whole reply).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

pub struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, args: &[&str]) {
        let mut out = Vec::new();
        encode(args, &mut out);
        self.reader.get_mut().write_all(&out).expect("write");
    }

    /// Reads a one-line reply (integer, nil, status or error).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        line.trim_end().to_string()
    }

    pub fn int(&mut self) -> i64 {
        let line = self.line();
        line.strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("expected an integer, got {line:?}"))
    }

    /// Sends and reads an integer reply.
    pub fn int_of(&mut self, args: &[&str]) -> i64 {
        self.send(args);
        self.int()
    }

    /// Sends and reads a one-line reply.
    pub fn call(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.line()
    }

    /// Sends several commands in one write (a pipeline).
    pub fn send_all<A: AsRef<[u8]>>(&mut self, commands: &[Vec<A>]) {
        let mut out = Vec::new();
        for args in commands {
            encode(args, &mut out);
        }
        self.reader.get_mut().write_all(&out).expect("write");
    }

    /// Reads one whole reply, whatever its type.
    pub fn value(&mut self) -> Value {
        read_value(&mut self.reader)
    }

    /// A read that waits longer than `limit` fails the test instead of
    /// hanging it.
    pub fn read_timeout(&mut self, limit: std::time::Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(limit))
            .expect("read timeout");
    }
}

/// A whole RESP2 reply.
#[derive(Debug, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    Status(String),
    Error(String),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
}

/// Reads one whole reply (RESP2), errors inside arrays included.
pub fn read_value(r: &mut impl BufRead) -> Value {
    let mut line = String::new();
    r.read_line(&mut line).expect("read reply");
    let line = line.trim_end();
    assert!(!line.is_empty(), "connection closed before a reply");
    let (kind, rest) = line.split_at(1);
    let number = || -> i64 {
        rest.parse()
            .unwrap_or_else(|_| panic!("bad number in {line:?}"))
    };
    match kind {
        "-" => Value::Error(rest.to_string()),
        "+" => Value::Status(rest.to_string()),
        ":" => Value::Int(number()),
        "$" if number() < 0 => Value::Nil,
        "$" => {
            let mut buf = vec![0; number() as usize + 2];
            r.read_exact(&mut buf).expect("bulk");
            buf.truncate(buf.len() - 2);
            Value::Bulk(buf)
        }
        "*" if number() < 0 => Value::Nil,
        "*" => Value::Array((0..number()).map(|_| read_value(r)).collect()),
        other => panic!("unexpected reply type {other:?} in {line:?}"),
    }
}

/// Appends `args` as one RESP command.
pub fn encode<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A reply reduced to what the checks need.
#[derive(Debug)]
pub enum Reply {
    Value,
    Error(String),
}

/// Reads one whole reply (RESP2); an error inside an array panics. Error
/// texts need not be UTF-8 (servers quote the bytes they were sent).
pub fn read_reply(r: &mut impl BufRead) -> Reply {
    let mut bytes = Vec::new();
    r.read_until(b'\n', &mut bytes).expect("read reply");
    let line = String::from_utf8_lossy(&bytes);
    let line = line.trim_end();
    assert!(!line.is_empty(), "no reply: the connection closed");
    let (kind, rest) = line.split_at(1);
    match kind {
        "-" => Reply::Error(rest.to_string()),
        "+" | ":" => Reply::Value,
        "$" => {
            let len: i64 = rest.parse().expect("bulk length");
            if len >= 0 {
                let mut buf = vec![0; len as usize + 2];
                r.read_exact(&mut buf).expect("bulk");
            }
            Reply::Value
        }
        "*" => {
            let n: i64 = rest.parse().expect("array length");
            for _ in 0..n.max(0) {
                if let Reply::Error(e) = read_reply(r) {
                    panic!("error inside an array: {e}");
                }
            }
            Reply::Value
        }
        other => panic!("unexpected reply type {other:?} in {line:?}"),
    }
}
