//! `hblock info KEY` shows the waiters (HBLOCK.WAITERS) after INFO's
//! lines, `--json` as `waiters_list`; INFO alone when they cannot be read.

use super::*;
use support::raw::Raw;

/// A raw connection blocked in ACQUIRE ... WAIT on `key`, once INFO counts
/// it; its client id.
fn queue(server: &Server, key: &str, owner: &str, wait: &str, position: i64) -> (Raw, i64) {
    let mut raw = Raw::connect(server.port);
    let id = raw.int_of(&["CLIENT", "ID"]);
    raw.send(&["HBLOCK.ACQUIRE", key, owner, "WAIT", wait]);
    let mut c = server.conn();
    let queued = eventually(Duration::from_secs(10), || {
        (support::info_int(&mut c, key, "waiters") == position).then_some(())
    });
    assert!(queued.is_some(), "{owner} never queued");
    (raw, id)
}

#[test]
fn info_lists_the_waiters_in_queue_order() {
    let server = Server::start();
    let held = hblock(
        &server,
        &["acquire", "q", "--owner", "h", "--interval", "60000"],
    );
    assert_eq!(stdout(&held), "1");
    let none = hblock(&server, &["info", "q", "--json"]);
    let object: serde_json::Value = serde_json::from_str(&stdout(&none)).unwrap();
    assert_eq!(object["waiters_list"], serde_json::json!([]));
    let plain = stdout(&hblock(&server, &["info", "q"]));
    assert!(
        plain.ends_with("bound      0\nlimit      1\nholders    1"),
        "no waiter lines: {plain}"
    );

    let (_w1, id1) = queue(&server, "q", "w1", "0", 1);
    let (_w2, id2) = queue(&server, "q", "w2", "60000", 2);
    let text = hblock(&server, &["info", "q"]);
    assert_eq!(code(&text), 0);
    let out = stdout(&text);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 16, "{out}");
    assert!(lines[10].starts_with("waiters    2"), "{out}");
    let first: Vec<&str> = lines[14].split_whitespace().collect();
    assert_eq!(first[0], "waiter");
    assert_eq!(first[1], "owner=w1");
    assert_eq!(first[3], "timeout=-1");
    assert_eq!(first[4], format!("client={id1}"));
    let second: Vec<&str> = lines[15].split_whitespace().collect();
    assert_eq!(
        (second[1], second[4]),
        ("owner=w2", format!("client={id2}").as_str())
    );

    let json = hblock(&server, &["info", "q", "--json"]);
    assert_eq!(code(&json), 0);
    let object: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let fields: Vec<&str> = object
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(fields.last(), Some(&"waiters_list"), "after INFO's fields");
    assert_eq!(fields.get(fields.len() - 2), Some(&"holders"));
    let list = object["waiters_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 2, "{object}");
    let entry: Vec<&str> = list[0]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(entry, ["owner", "waited", "timeout", "client"]);
    assert_eq!(
        (&list[0]["owner"], &list[0]["timeout"], &list[0]["client"]),
        (&"w1".into(), &(-1).into(), &id1.into())
    );
    assert_eq!(
        (&list[1]["owner"], &list[1]["client"]),
        (&"w2".into(), &id2.into())
    );
    let timeout = list[1]["timeout"].as_i64().unwrap_or(-1);
    assert!((1..=60_000).contains(&timeout), "{}", list[1]);
    let waited = list[0]["waited"].as_i64().unwrap_or(-1);
    assert!(waited >= 0, "{}", list[0]);
}

#[test]
fn info_without_the_right_to_read_waiters_shows_info_alone() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "infoonly",
            "on",
            ">pw",
            "~*",
            "+hblock.info",
            "+client",
        ])
        .query(&mut c)
        .unwrap();
    hblock(
        &server,
        &["acquire", "r", "--owner", "h", "--interval", "60000"],
    );
    let url = format!("redis://infoonly:pw@127.0.0.1:{}/", server.port);
    for json in [false, true] {
        let mut args = vec!["--redis", url.as_str(), "info", "r"];
        if json {
            args.push("--json");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_hblock"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 0, "{err}");
        assert!(err.contains("hblock: r: waiters not shown: "), "{err}");
        assert!(err.contains("NOPERM"), "{err}");
        let text = stdout(&out);
        assert!(!text.lines().any(|l| l.starts_with("waiter ")), "{text}");
        if json {
            let object: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(object["owner"], "h");
            assert!(object.get("waiters_list").is_none(), "{object}");
        } else {
            assert!(text.starts_with("state      held\nowner      h"), "{text}");
        }
    }
}
