//! A raw RESP connection: commands out, one-line replies in. One fd per
//! connection, so 10,000 of them fit the fd limit.

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
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
        }
        self.reader
            .get_mut()
            .write_all(out.as_bytes())
            .expect("write");
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
}
