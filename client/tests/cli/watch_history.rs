//! `hblock watch KEY --history`: the lock's past leases (HBLOCK.HISTORY),
//! oldest first, before the current holder and the changes.

use super::*;
use std::io::{BufRead, BufReader};
use std::sync::mpsc::{self, Receiver};

/// `hblock watch` running, its stdout lines on a channel, stderr in a file.
struct Watching {
    child: Child,
    lines: Receiver<String>,
    stderr: tempfile::NamedTempFile,
}

impl Watching {
    fn start(url: &str, args: &[&str]) -> Watching {
        let stderr = tempfile::NamedTempFile::new().expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hblock"))
            .args(["--redis", url, "watch"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("stderr"))
            .spawn()
            .expect("hblock watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watching {
            child,
            lines,
            stderr,
        }
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line from hblock watch; stderr: {}", self.stderr()))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two leases of `key` held and released (tokens 1 and 2), a third held
/// by h3 (token 3).
fn three_leases(server: &Server, key: &str) {
    for (owner, token) in [("h1", "1"), ("h2", "2")] {
        let t = hblock(server, &["acquire", key, "--owner", owner]);
        assert_eq!(stdout(&t), token);
        let r = hblock(server, &["release", key, owner, token]);
        assert_eq!(stdout(&r), "1");
    }
    let t = hblock(
        server,
        &["acquire", key, "--owner", "h3", "--interval", "60000"],
    );
    assert_eq!(stdout(&t), "3");
}

#[test]
fn watch_history_prints_past_leases_oldest_first() {
    let server = Server::start();
    support::config_set(&mut server.conn(), "hblock.history", "5");
    three_leases(&server, "k");
    let text = Watching::start(&server.url(), &["k", "--history"]);
    for (owner, token) in [("h1", 1), ("h2", 2)] {
        let line = text.next();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 6, "{line}");
        assert_eq!(
            (fields[0], fields[1], fields[2], fields[5]),
            (
                "ended",
                format!("owner={owner}").as_str(),
                format!("token={token}").as_str(),
                "how=released"
            ),
            "{line}"
        );
        for stamp in [&fields[3]["granted=".len()..], &fields[4]["ended=".len()..]] {
            assert!(humantime::parse_rfc3339(stamp).is_ok(), "{line}");
        }
    }
    let current = text.next();
    assert!(
        current.starts_with("held owner=h3 token=3 ttl="),
        "{current}"
    );
    hblock(&server, &["release", "k", "h3", "3"]);
    assert_eq!(text.next(), "free");

    let json = Watching::start(&server.url(), &["k", "--history", "--json"]);
    let objects: Vec<serde_json::Value> = (0..4)
        .map(|_| serde_json::from_str(&json.next()).expect("JSON"))
        .collect();
    let owners: Vec<&str> = objects
        .iter()
        .take(3)
        .map(|o| o["owner"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(owners, ["h1", "h2", "h3"], "oldest first");
    let fields: Vec<&str> = objects[2]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["owner", "token", "granted", "ended", "how"]);
    let (granted, ended) = (
        objects[2]["granted"].as_i64().unwrap_or(0),
        objects[2]["ended"].as_i64().unwrap_or(0),
    );
    assert!(granted > 0 && ended >= granted, "{}", objects[2]);
    assert_eq!(objects[3]["state"], "free", "then the current state");
}

#[test]
fn watch_history_without_a_history_or_the_right_to_read_it_just_watches() {
    let server = Server::start();
    three_leases(&server, "k");
    // hblock.history 0 (the default): nothing kept, nothing printed.
    let plain = Watching::start(&server.url(), &["k", "--history"]);
    let first = plain.next();
    assert!(first.starts_with("held owner=h3 token=3"), "{first}");
    assert_eq!(plain.stderr(), "");
    // An ACL user that may watch but not read the history.
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "watcher",
            "on",
            ">pw",
            "~*",
            "+hblock.info",
            "+hblock.watch",
            "+client",
        ])
        .query(&mut server.conn())
        .unwrap();
    let url = format!("redis://watcher:pw@127.0.0.1:{}/", server.port);
    let refused = Watching::start(&url, &["k", "--history"]);
    let first = refused.next();
    assert!(first.starts_with("held owner=h3 token=3"), "{first}");
    let err = refused.stderr();
    assert!(err.starts_with("hblock: k: history not shown: "), "{err}");
}
