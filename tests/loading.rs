//! Loading the module and loading data: module arguments (refused with one
//! clear line), MODULE LOAD twice, keys looked at but never touched, and
//! diskless loading kept on.

use crate::support::{acquire, digest, refused_start, wait_in_sync, Options, Server};
use redis::{Connection, Value};
use std::time::Duration;

// ---- 4. module arguments ----

#[test]
fn bad_module_arguments_refuse_the_start_with_one_clear_line() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["interval", "0"],
            "module argument 'interval' is '0': it must be an integer from 1 to 86400000",
        ),
        (&["interval", "-5"], "'interval' is '-5'"),
        (
            &["misses", "70000"],
            "'misses' is '70000': it must be an integer from 1 to 10000",
        ),
        (&["misses", "abc"], "'misses' is 'abc'"),
        (&["bogus", "1"], "unknown module argument 'bogus'"),
        (&["interval"], "'interval' needs a value"),
        (
            &["interval", "500", "INTERVAL", "600"],
            "'interval' is given twice",
        ),
    ];
    for (args, line) in cases {
        let opts = Options {
            module_args: args.iter().map(|a| a.to_string()).collect(),
            ..Options::default()
        };
        let log = refused_start(opts);
        assert!(log.contains(line), "{args:?}: log lacks {line:?}:\n{log}");
    }
    // Names are case-insensitive, as elsewhere in Redis.
    let server = Server::with(Options::default().module_arg("INTERVAL", "500"));
    let mut c = server.conn();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hblock.interval")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["hblock.interval", "500"]);
}

#[test]
fn module_load_with_any_bytes_and_a_second_load_say_what_is_wrong() {
    let server = Server::with(Options::default().without_module());
    let mut c = server.conn();
    let module = crate::support::module_path();
    let load = |c: &mut Connection, args: &[&[u8]]| {
        let mut cmd = redis::cmd("MODULE");
        cmd.arg("LOAD").arg(module.to_str().unwrap());
        for a in args {
            cmd.arg(*a);
        }
        cmd.query::<Value>(c)
    };
    // A NUL in an argument is refused with an escaped log line, not a crash.
    assert!(load(&mut c, &[b"misses", b"1\0"]).is_err());
    assert!(load(&mut c, &[b"in\0terval", b"5"]).is_err());
    assert!(
        server.log().contains("module argument 'misses' is '1\\0'"),
        "{}",
        server.log()
    );
    // The module loads after a refused load, and a second load says why it fails.
    assert!(load(&mut c, &[b"interval", b"500"]).is_ok());
    assert_eq!(acquire(&mut c, "k", "o", &[]), Some(1));
    assert!(load(&mut c, &[]).is_err());
    assert!(
        server
            .log()
            .contains("hblock is already loaded, so MODULE LOAD of"),
        "{}",
        server.log()
    );
    // What the log line says instead of "MODULE UNLOAD first": unloading is
    // refused (hblock exports a data type), so a restart is the way.
    assert!(
        server.log().contains("restart the server"),
        "{}",
        server.log()
    );
    let unload = redis::cmd("MODULE")
        .arg(&["UNLOAD", "hblock"])
        .query::<Value>(&mut c);
    assert!(unload.is_err(), "MODULE UNLOAD hblock: {unload:?}");
    assert_eq!(acquire(&mut c, "k", "o", &[]), Some(1), "still loaded");
}

// ---- 7. looking at a key never changes it; diskless loading kept ----

#[test]
fn restore_keeps_its_idle_time() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("v")
        .query(&mut c)
        .unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("plain").query(&mut c).unwrap();
    let _: i64 = redis::cmd("DEL").arg("plain").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("plain")
        .arg(0)
        .arg(payload)
        .arg("IDLETIME")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    // The module's timer looks at restored keys within a few ms.
    std::thread::sleep(Duration::from_millis(100));
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("plain")
        .query(&mut c)
        .unwrap();
    assert!(idle >= 1000, "OBJECT IDLETIME {idle}");
}

#[test]
fn diskless_swapdb_loading_stays_on_with_the_module() {
    let master = Server::with(
        Options::default()
            .config("repl-diskless-sync", "yes")
            .config("repl-diskless-sync-delay", "0"),
    );
    let mut m = master.conn();
    for i in 0..50 {
        acquire(&mut m, &format!("d:{i}"), "o", &["INTERVAL", "600000"]);
    }
    let replica = Server::with(
        Options::default()
            .config("replicaof", &format!("127.0.0.1 {}", master.port))
            .config("repl-diskless-load", "swapdb"),
    );
    let mut r = replica.conn();
    wait_in_sync(&mut m, &mut r);
    let log = replica.log();
    assert!(!log.contains("Skipping diskless-load"), "{log}");
    assert!(
        log.contains("Loading DB in memory") || log.contains("diskless"),
        "{log}"
    );
    assert_eq!(digest(&mut m), digest(&mut r));
}
