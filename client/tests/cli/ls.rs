//! `hblock ls`: every lock on a server or on every master of a cluster,
//! sorted, other types skipped, --json, --limit, keys deleted meanwhile.

use super::*;
use hblock_client::ls::{find_locks, scan_locks};
use redis::Commands;
use support::raw::Raw;

fn hblock_on(urls: &[String], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
    for url in urls {
        cmd.arg("--redis").arg(url);
    }
    cmd.args(args).output().expect("run hblock")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn acquire_raw(c: &mut impl redis::ConnectionLike, key: &[u8], owner: &[u8]) -> i64 {
    redis::cmd("HBLOCK.ACQUIRE")
        .arg(key)
        .arg(owner)
        .arg("INTERVAL")
        .arg(60_000)
        .query(c)
        .expect("ACQUIRE")
}

/// `--json` lines parsed.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn ls_lists_every_lock_sorted_and_skips_other_types() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire_raw(&mut c, b"jobs:b", b"b"), 1);
    assert_eq!(acquire_raw(&mut c, b"jobs:a", b"a"), 2);
    assert_eq!(acquire_raw(&mut c, b"jobs:c", b"c"), 3);
    let released: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg("jobs:c")
        .arg("c")
        .arg(3)
        .query(&mut c)
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(acquire_raw(&mut c, b"jobs:\xff", b"\xfe"), 4);
    assert_eq!(acquire_raw(&mut c, b"other", b"o"), 5);
    // A waiter on jobs:a (its reply is never read).
    let mut waiter = Raw::connect(server.port);
    waiter.send(&["HBLOCK.ACQUIRE", "jobs:a", "w", "WAIT", "0"]);
    let queued = eventually(Duration::from_secs(10), || {
        (support::info_int(&mut c, "jobs:a", "waiters") == 1).then_some(())
    });
    assert!(queued.is_some(), "the waiter never queued");
    // Other types whose names match, which SCAN's TYPE filter leaves out.
    let _: () = c.set("jobs:str", "v").unwrap();
    let _: () = c.hset("jobs:hash", "f", "v").unwrap();
    let _: () = c.rpush("jobs:list", "v").unwrap();

    let all = hblock(&server, &["ls"]);
    assert_eq!(code(&all), 0, "{}", stderr(&all));
    let text = stdout(&all);
    let lines: Vec<&str> = text.lines().collect();
    let keys: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    // Sorted bytewise: "jobs:\xff" (shown in hex) after "jobs:c".
    assert_eq!(
        keys,
        ["jobs:a", "jobs:b", "jobs:c", "0x6a6f62733aff", "other"],
        "{text}"
    );
    let fields = |line: &str| -> Vec<String> {
        line.split_whitespace()
            .skip(1)
            .filter(|f| !f.starts_with("ttl="))
            .map(String::from)
            .collect()
    };
    assert_eq!(
        fields(lines[0]),
        ["held", "owner=a", "token=2", "waiters=1", "missed=0"]
    );
    assert_eq!(
        fields(lines[2]),
        ["free", "owner=-", "token=3", "waiters=0", "missed=0"]
    );
    assert_eq!(fields(lines[3])[1], "owner=0xfe");
    let ttl: i64 = lines[1]
        .split_whitespace()
        .find_map(|f| f.strip_prefix("ttl="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(-1);
    assert!((1..=180_000).contains(&ttl), "{}", lines[1]);

    let json = hblock(&server, &["ls", "jobs:*", "--json"]);
    assert_eq!(code(&json), 0, "{}", stderr(&json));
    let objects = json_lines(&json);
    assert_eq!(objects.len(), 4, "{}", stdout(&json));
    let a = &objects[0];
    let names: Vec<&str> = a
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "key",
            "state",
            "owner",
            "token",
            "interval",
            "misses",
            "missed",
            "ttl",
            "beats",
            "age",
            "takeovers",
            "waiters",
            "bound",
            "limit",
            "holders"
        ]
    );
    assert_eq!(
        (
            &a["key"],
            &a["state"],
            &a["owner"],
            &a["token"],
            &a["waiters"]
        ),
        (
            &"jobs:a".into(),
            &"held".into(),
            &"a".into(),
            &2.into(),
            &1.into()
        )
    );
    assert_eq!(objects[2]["state"], "free");
    assert_eq!(objects[2]["owner"], serde_json::Value::Null);
    let binary = &objects[3];
    assert_eq!(
        (&binary["key"], &binary["key_hex"], &binary["owner_hex"]),
        (
            &serde_json::Value::Null,
            &"6a6f62733aff".into(),
            &"fe".into()
        )
    );
    // The same fields as `hblock info --json` (but the clock's and the waiters).
    let info = hblock(&server, &["info", "jobs:b", "--json"]);
    let mut info: serde_json::Value = serde_json::from_str(&stdout(&info)).unwrap();
    let mut listed = objects[1].clone();
    for v in [&mut info, &mut listed] {
        if let Some(o) = v.as_object_mut() {
            o.remove("ttl");
            o.remove("age");
        }
    }
    if let Some(o) = listed.as_object_mut() {
        assert_eq!(o.remove("key"), Some("jobs:b".into()));
    }
    // `info` adds the waiters after INFO's fields; `ls` has INFO's only.
    if let Some(o) = info.as_object_mut() {
        assert_eq!(o.remove("waiters_list"), Some(serde_json::json!([])));
    }
    assert_eq!(listed, info);

    let limited = hblock(&server, &["ls", "--limit", "2"]);
    assert_eq!(code(&limited), 0);
    let firsts: Vec<String> = stdout(&limited)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(firsts, ["jobs:a", "jobs:b"]);
    assert_eq!(
        stderr(&limited),
        "hblock: ls: 3 more locks not shown (--limit 2)"
    );
    let none = hblock(&server, &["ls", "nomatch:*"]);
    assert_eq!((code(&none), stdout(&none).as_str()), (0, ""));
    assert_eq!(code(&hblock(&server, &["ls", "--limit", "0"])), 2);
}

#[test]
fn a_key_deleted_or_replaced_between_scan_and_info_is_skipped() {
    let server = Server::start();
    let mut c = server.conn();
    for (i, key) in ["k1", "k2", "k3", "k4", "k5"].iter().enumerate() {
        assert_eq!(acquire_raw(&mut c, key.as_bytes(), b"o"), i as i64 + 1);
    }
    let client = hblock_client::Client::open(&server.url()).unwrap();
    let found = find_locks(&client, "k*").unwrap();
    assert_eq!(found.len(), 5);
    // Between SCAN and INFO: k2 deleted, k3 replaced by a string.
    let _: () = c.del("k2").unwrap();
    let _: () = c.del("k3").unwrap();
    let _: () = c.set("k3", "now a string").unwrap();
    let listing = found.list(Some(2)).unwrap();
    let keys: Vec<&[u8]> = listing.locks.iter().map(|l| l.key.as_slice()).collect();
    assert_eq!(keys, [b"k1".as_slice(), b"k4"], "the next names fill in");
    assert_eq!(listing.left_out, 1, "k5 not asked");
    assert_eq!(listing.locks[1].info.token, 4);
    assert_eq!(listing.locks[0].node, format!("127.0.0.1:{}", server.port));
    let all = scan_locks(&client, "*", None).unwrap();
    assert_eq!((all.locks.len(), all.left_out), (3, 0));
}

#[test]
fn ls_without_the_module_or_a_server_exits_3_with_a_hint() {
    let bare = Server::with(support::Options::default().without_module());
    let out = hblock(&bare, &["ls"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("hblock: ls: ")
            && stderr(&out)
                .ends_with("is the hblock module loaded? (loadmodule /path/to/libhblock.so)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    let gone = hblock_on(&["redis://127.0.0.1:1".into()], &["ls"]);
    assert_eq!(code(&gone), 3, "{}", stderr(&gone));
}

#[test]
fn ls_on_a_cluster_lists_the_locks_of_every_master_once() {
    let cluster = support::cluster::Cluster::start();
    let mut c = cluster.client();
    let keys: Vec<String> = (0..90).map(|i| format!("lock:{i:03}")).collect();
    for key in &keys {
        acquire_raw(&mut c, key.as_bytes(), b"o");
    }
    let _: () = c.set("lock:str", "v").unwrap();
    // Every master holds some of them; the replicas hold copies.
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    for &m in &masters {
        let mut node = cluster.nodes[m].conn();
        let n: i64 = redis::cmd("DBSIZE").query(&mut node).unwrap();
        assert!(n > 0, "master {m} holds no lock");
    }
    let wait_replicated = eventually(Duration::from_secs(10), || {
        cluster
            .nodes
            .iter()
            .map(|n| {
                redis::cmd("DBSIZE")
                    .query::<i64>(&mut n.conn())
                    .unwrap_or(0)
            })
            .sum::<i64>()
            .eq(&(2 * 91))
            .then_some(())
    });
    assert!(wait_replicated.is_some(), "replicas never caught up");
    for urls in [cluster.urls(), vec![cluster.nodes[masters[0]].url()]] {
        let mut args = vec!["ls", "lock:*", "--json"];
        if urls.len() == 1 {
            args.insert(0, "--cluster");
        }
        let out = hblock_on(&urls, &args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let listed: Vec<String> = json_lines(&out)
            .iter()
            .map(|o| o["key"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(listed, keys, "each once, sorted; the string left out");
    }
    let limited = hblock_on(&cluster.urls(), &["ls", "--limit", "5"]);
    assert_eq!(stdout(&limited).lines().count(), 5);
    assert_eq!(
        stderr(&limited),
        "hblock: ls: 85 more locks not shown (--limit 5)"
    );
}

#[test]
fn ls_lists_100000_locks() {
    const LOCKS: usize = 100_000;
    let server = Server::start();
    let mut c = server.conn();
    for chunk in 0..LOCKS / 10_000 {
        let mut pipe = redis::pipe();
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            pipe.cmd("HBLOCK.ACQUIRE")
                .arg(format!("big:{i:06}"))
                .arg("o")
                .arg("INTERVAL")
                .arg(60_000)
                .ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    for i in 0..1000 {
        let _: () = c.set(format!("big:str:{i}"), "v").unwrap();
    }
    let started = Instant::now();
    let out = hblock(&server, &["ls", "--json"]);
    let took = started.elapsed();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut count = 0;
    let mut last = String::new();
    for line in text.lines() {
        let object: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = object["key"].as_str().unwrap_or_default().to_string();
        assert!(key > last, "{key} after {last}");
        assert_eq!(object["state"], "held");
        last = key;
        count += 1;
    }
    assert_eq!(count, LOCKS);
    assert_eq!(last, format!("big:{:06}", LOCKS - 1));
    println!("hblock ls --json of {LOCKS} locks: {took:.2?}");
    let limited = hblock(&server, &["ls", "--limit", "10"]);
    assert_eq!(stdout(&limited).lines().count(), 10);
    assert_eq!(
        stderr(&limited),
        "hblock: ls: 99990 more locks not shown (--limit 10)"
    );
}

#[test]
fn ls_through_sentinel_lists_the_masters_locks() {
    let set = support::sentinel::SentinelSet::start(support::Options::default());
    let mut master = set.nodes[0].conn();
    for key in ["s:b", "s:a", "s:c"] {
        acquire_raw(&mut master, key.as_bytes(), b"o");
    }
    // The replica holds copies: listed once, from the master.
    support::wait_in_sync(&mut master, &mut set.nodes[1].conn());
    let out = hblock_on(&[set.url()], &["ls", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let keys: Vec<String> = json_lines(&out)
        .iter()
        .map(|o| o["key"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(keys, ["s:a", "s:b", "s:c"]);
    let client = hblock_client::Client::open(&set.url()).unwrap();
    let listing = scan_locks(&client, "*", None).unwrap();
    let nodes: Vec<&str> = listing.locks.iter().map(|l| l.node.as_str()).collect();
    let addr = format!("127.0.0.1:{}", set.nodes[0].port);
    assert_eq!(nodes, [addr.as_str(); 3]);
}

/// Regression (review of issue 27): `ls` prints one line per lock, but a
/// key or an owner with a newline (valid UTF-8, so not hex) was printed
/// raw: any user who may create a lock could add forged lines to an
/// operator's listing (and terminal escapes went through as they are).
#[test]
fn ls_keeps_one_line_per_lock_whatever_the_key_and_owner() {
    let server = Server::start();
    let mut c = server.conn();
    acquire_raw(&mut c, b"a\nforged held      owner=admin token=1", b"o");
    acquire_raw(&mut c, b"b", b"evil\nfake      held      owner=root");
    acquire_raw(&mut c, b"c", b"esc\x1b[2J");
    let out = hblock_on(&[server.url()], &["ls"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(text.lines().count(), 3, "{text:?}");
    assert!(!text.contains('\x1b'), "{text:?}");
}
