use crate::support::{acquire, call, config_set, counter, error_of, info_int, Options, Server};
use redis::Value;
use std::time::Duration;

#[test]
fn configs_set_defaults_of_new_leases() {
    let server = Server::with(
        Options::default()
            .module_arg("interval", "500")
            .module_arg("misses", "5"),
    );
    let mut c = server.conn();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hblock.interval")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["hblock.interval", "500"]);
    assert_eq!(acquire(&mut c, "a", "o", &[]), Some(1));
    assert_eq!(
        (
            info_int(&mut c, "a", "interval"),
            info_int(&mut c, "a", "misses")
        ),
        (500, 5)
    );

    config_set(&mut c, "hblock.interval", "2000");
    config_set(&mut c, "hblock.misses", "4");
    assert_eq!(acquire(&mut c, "b", "o", &[]), Some(2));
    assert_eq!(
        (
            info_int(&mut c, "b", "interval"),
            info_int(&mut c, "b", "misses")
        ),
        (2000, 4)
    );
    assert_eq!(
        info_int(&mut c, "a", "interval"),
        500,
        "existing leases keep their terms"
    );

    for (name, value) in [
        ("hblock.interval", "0"),
        ("hblock.interval", "86400001"),
        ("hblock.misses", "10001"),
    ] {
        let err = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(&mut c);
        assert!(err.is_err(), "{name} {value} accepted");
    }
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hblock.*")
        .query(&mut c)
        .unwrap();
    assert!(
        got.contains(&"2000".to_string()) && got.contains(&"4".to_string()),
        "{got:?}"
    );
}

#[test]
fn defaults_without_arguments_are_1000_and_3() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "a", "o", &[]), Some(1));
    assert_eq!(
        (
            info_int(&mut c, "a", "interval"),
            info_int(&mut c, "a", "misses")
        ),
        (1000, 3)
    );
}

fn command_flags(c: &mut redis::Connection, name: &str) -> Vec<String> {
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(c)
        .unwrap();
    let Some(Value::Array(fields)) = info.first() else {
        panic!("{info:?}")
    };
    match &fields[2] {
        Value::Array(flags) => flags
            .iter()
            .map(|f| match f {
                Value::SimpleString(s) => s.clone(),
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_metadata_flags_keys_and_docs() {
    let server = Server::start();
    let mut c = server.conn();
    let table: [(&str, &[&str], i64); 4] = [
        ("hblock.acquire", &["write", "denyoom"], -3),
        ("hblock.beat", &["write", "fast"], 4),
        ("hblock.release", &["write", "fast"], 4),
        ("hblock.info", &["readonly", "fast"], 2),
    ];
    for (name, want, arity) in table {
        let flags = command_flags(&mut c, name);
        for flag in want {
            assert!(
                flags.iter().any(|f| f == flag),
                "{name}: {flags:?} lacks {flag}"
            );
        }
        let info: Vec<Vec<Value>> = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(name)
            .query(&mut c)
            .unwrap();
        assert_eq!(info[0][1], Value::Int(arity), "{name} arity");
        let docs: Value = redis::cmd("COMMAND")
            .arg("DOCS")
            .arg(name)
            .query(&mut c)
            .unwrap();
        let text = format!("{docs:?}");
        assert!(
            text.contains("summary") && text.contains("arguments"),
            "{name}: {text}"
        );
    }
    assert!(!command_flags(&mut c, "hblock.acquire")
        .iter()
        .any(|f| f == "fast"));
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("HBLOCK.ACQUIRE")
        .arg("app:lock")
        .arg("owner")
        .arg("WAIT")
        .arg("0")
        .query(&mut c)
        .unwrap();
    assert_eq!(keys, ["app:lock"]);
}

#[test]
fn info_section_counts_everything() {
    let server = Server::start();
    let mut c = server.conn();
    acquire(&mut c, "lock", "a", &[]);
    acquire(&mut c, "lock", "b", &[]);
    let _: i64 = call(&mut c, &[b"HBLOCK.BEAT", b"lock", b"a", b"1"]).unwrap();
    let _ = error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"b", b"1"]);
    let _: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"lock", b"a", b"1"]).unwrap();
    let want = [
        ("acquired", 1),
        ("released", 1),
        ("expired", 0),
        ("takeovers", 0),
        ("beats", 1),
        ("notheld", 1),
        ("waiting", 0),
        ("wait_timeouts", 0),
    ];
    for (name, value) in want {
        assert_eq!(counter(&mut c, name), value, "hblock_{name}");
    }
}

#[test]
fn keyspace_notifications_for_acquire_release_and_expiry() {
    let server = Server::with(Options::default().config("notify-keyspace-events", "Ed"));
    let mut sub = server.conn();
    let mut pubsub = sub.as_pubsub();
    pubsub.psubscribe("__keyevent@0__:hblock.*").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut c = server.conn();
    // The first lease is released, not left to lapse: a long one, so that a
    // client preempted between ACQUIRE and RELEASE does not see it expire.
    assert_eq!(
        acquire(&mut c, "lock", "a", &["INTERVAL", "600000"]),
        Some(1)
    );
    let released: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"lock", b"a", b"1"]).unwrap();
    assert_eq!(released, 1);
    assert_eq!(
        acquire(&mut c, "lock", "a", &["INTERVAL", "20", "MISSES", "1"]),
        Some(2)
    );
    let lapsed = crate::support::eventually(Duration::from_secs(2), || {
        (crate::support::state(&mut c, "lock") == "expired").then_some(())
    });
    assert!(lapsed.is_some(), "the 20 ms lease never lapsed");
    let _ = error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"a", b"2"]);
    let _ = error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"a", b"2"]);
    assert_eq!(acquire(&mut c, "lock", "b", &[]), Some(3));
    let mut events = Vec::new();
    for _ in 0..5 {
        let msg = pubsub.get_message().expect("event within 5 s");
        let payload: String = msg.get_payload().unwrap();
        events.push((msg.get_channel_name().to_string(), payload));
    }
    let names: Vec<&str> = events
        .iter()
        .map(|(ch, _)| ch.trim_start_matches("__keyevent@0__:"))
        .collect();
    assert_eq!(
        names,
        [
            "hblock.acquired",
            "hblock.released",
            "hblock.acquired",
            "hblock.expired",
            "hblock.acquired"
        ],
        "expired published once per lease"
    );
    assert!(events.iter().all(|(_, key)| key == "lock"));
}

#[test]
fn lua_sees_info_as_plain_strings_and_multi_works() {
    let server = Server::start();
    let mut c = server.conn();
    acquire(&mut c, "lock", "alice", &[]);
    let script = "local r = redis.call('HBLOCK.INFO', KEYS[1]); return {r[1], r[2], r[3], r[4]}";
    let got: Vec<String> = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("lock")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["state", "held", "owner", "alice"]);
    let (t1, t2, beats): (Option<i64>, Option<i64>, i64) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.ACQUIRE")
        .arg("m")
        .arg("x")
        .cmd("HBLOCK.ACQUIRE")
        .arg("m")
        .arg("y")
        .cmd("HBLOCK.BEAT")
        .arg("m")
        .arg("x")
        .arg(2) // "lock" got 1: the data set's next token
        .query(&mut c)
        .unwrap();
    assert_eq!((t1, t2, beats), (Some(2), None, 1));
}

/// The repository's redis.conf (what `make run` starts) loads the module.
#[test]
fn the_repository_redis_conf_loads_the_module() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child =
        std::process::Command::new(std::env::var("SERVER_BIN").unwrap_or("redis-server".into()))
            .current_dir(root)
            .arg("redis.conf")
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let pid = child.id();
    let token = crate::support::eventually(Duration::from_secs(10), || {
        let mut c = redis::Client::open(url.as_str())
            .ok()?
            .get_connection()
            .ok()?;
        // Our child, not another test's server that took the port first.
        if crate::support::process_id(&mut c)? != pid {
            return None;
        }
        redis::cmd("HBLOCK.ACQUIRE")
            .arg("conf")
            .arg("me")
            .query::<i64>(&mut c)
            .ok()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(token, Some(1));
}

/// The harness keeps the port of a server stopped on purpose: another
/// server (another test's) cannot take it while clients still try that
/// address, and the stopped one starts there again.
#[test]
fn a_stopped_servers_port_stays_its_own_until_it_starts_again() {
    let mut stopped = Server::start();
    let port = stopped.port;
    stopped.stop();
    let refused = redis::Client::open(stopped.url()).and_then(|c| c.get_connection());
    assert!(
        refused.is_err(),
        "nothing answers on a stopped server's port"
    );
    let other = Server::with(Options::default().port(port));
    assert_ne!(
        other.port, port,
        "another server took the stopped one's port"
    );
    stopped.relaunch();
    assert_eq!(stopped.port, port, "restarted on its own port");
    let pong: String = redis::cmd("PING").query(&mut stopped.conn()).unwrap();
    assert_eq!(pong, "PONG");
}
