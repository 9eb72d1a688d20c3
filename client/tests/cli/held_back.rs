//! Grants held back after an unplanned promotion (the failover delay,
//! issue #24): what `hblock acquire`, `hblock run`, `hblock info`, `hblock
//! watch` and the Rust API say while a lock is held back.

use super::*;
use hblock_client::{Client, NotGranted};

/// A replica promoted after its master was killed (the link was down: an
/// unplanned promotion), with `hblock.failover-delay` at `delay_ms`.
fn promoted_after_a_crash(delay_ms: &str) -> Server {
    let mut master =
        Server::with(support::Options::default().config("repl-diskless-sync-delay", "0"));
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    support::wait_in_sync(&mut m, &mut r);
    master.stop();
    let down = eventually(Duration::from_secs(10), || {
        (support::info_field(&mut r, "replication", "master_link_status")? == "down").then_some(())
    });
    assert!(down.is_some(), "the replica saw its master go");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    support::config_set(&mut r, "hblock.failover-delay", delay_ms);
    replica
}

const PHRASE: &str = "grants are held back after a failover for ";

#[test]
fn acquire_run_info_and_watch_say_grants_are_held_back() {
    let server = promoted_after_a_crash("60000");

    let out = hblock(&server, &["acquire", "new:a", "--owner", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains(PHRASE), "{err}");
    assert!(err.contains("ms (hblock.failover-delay)"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let out = hblock(&server, &["acquire", "new:a", "--owner", "x", "--json"]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("\"token\":null"), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(PHRASE));

    let dir = tempfile::tempdir().unwrap();
    let mut sup = Supervisor::start(&server, dir.path(), "r", &["--no-wait"], "true");
    assert_eq!(sup.wait_exit(Duration::from_secs(10)), Some(1));
    let log = sup.log();
    assert!(log.contains(PHRASE), "{log}");
    assert!(!log.contains("no such lock yet"), "{log}");

    let out = hblock(&server, &["info", "new:a", "--json"]);
    assert_eq!(
        code(&out),
        0,
        "INFO answers for a missing key while held back"
    );
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["state"], "held-back");
    assert_eq!(info["token"], 0);
    let ttl = info["ttl"].as_i64().unwrap_or(0);
    assert!(ttl > 50_000 && ttl <= 60_000, "ttl {ttl}");
    let text = hblock(&server, &["info", "new:a"]);
    assert!(
        stdout(&text).starts_with("state      held-back"),
        "{}",
        stdout(&text)
    );

    let mut watch = Command::new(env!("CARGO_BIN_EXE_hblock"))
        .args(["--redis", &server.url(), "watch", "new:a"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let read = {
        use std::io::BufRead;
        let pipe = watch.stdout.take().unwrap();
        std::io::BufReader::new(pipe).read_line(&mut first)
    };
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(read.is_ok());
    assert!(first.starts_with("held-back ttl="), "{first}");

    let client = Client::open(&server.url()).unwrap();
    match client.not_granted("new:a").unwrap() {
        NotGranted::HeldBack { left_ms } => assert!(left_ms > 50_000, "{left_ms}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn run_logs_the_hold_once_and_is_granted_when_it_ends() {
    let server = promoted_after_a_crash("1500");
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut sup = Supervisor::start(&server, dir.path(), "r", &[], SLEEPER);
    let child = wait_pid_file(&dir.path().join("r.pid"), Duration::from_secs(10));
    let waited = started.elapsed();
    eprintln!("hblock run granted {waited:?} after it started (1.5 s delay)");
    assert!(
        child.is_some(),
        "granted when the delay ended\n{}",
        sup.log()
    );
    let log = sup.log();
    assert_eq!(log.matches(PHRASE).count(), 1, "{log}");
    assert!(!log.contains("no such lock yet"), "{log}");
    sup.signal(libc::SIGTERM);
    assert_eq!(
        sup.wait_exit(Duration::from_secs(10)),
        Some(128 + libc::SIGTERM)
    );
}
