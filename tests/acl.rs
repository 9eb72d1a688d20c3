//! ACLs: key patterns apply to every command, commands are granted by name,
//! and by category where the server supports module ACL categories.

use crate::support::{acquire, call, error_of, Server};
use redis::Value;

#[test]
fn acl_key_patterns_apply_to_every_command() {
    let server = Server::start();
    let mut admin = server.conn();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(">pw")
        .arg("~app:*")
        .arg("+@all")
        .query(&mut admin)
        .unwrap();
    let mut c = server.conn();
    let _: () = redis::cmd("AUTH")
        .arg("app")
        .arg("pw")
        .query(&mut c)
        .unwrap();
    for args in [
        vec![&b"HBLOCK.ACQUIRE"[..], b"other:lock", b"o"],
        vec![b"HBLOCK.BEAT", b"other:lock", b"o", b"1"],
        vec![b"HBLOCK.RELEASE", b"other:lock", b"o", b"1"],
        vec![b"HBLOCK.INFO", b"other:lock"],
    ] {
        assert!(error_of(&mut c, &args).starts_with("NOPERM"), "{args:?}");
    }
    let token: i64 = call(&mut c, &[b"HBLOCK.ACQUIRE", b"app:lock", b"o"]).unwrap();
    assert_eq!(token, 1);
}

#[test]
fn a_user_without_the_commands_cannot_run_them() {
    let server = Server::start();
    let mut admin = server.conn();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("nohb")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@all")
        .arg("-hblock.acquire")
        .arg("-hblock.beat")
        .arg("-hblock.release")
        .arg("-hblock.info")
        .query(&mut admin)
        .unwrap();
    assert_eq!(acquire(&mut admin, "lock", "a", &[]), Some(1));
    let mut c = server.conn();
    let _: () = redis::cmd("AUTH")
        .arg("nohb")
        .arg("pw")
        .query(&mut c)
        .unwrap();
    for args in [
        vec![&b"HBLOCK.ACQUIRE"[..], b"lock", b"o"],
        vec![b"HBLOCK.BEAT", b"lock", b"a", b"1"],
        vec![b"HBLOCK.RELEASE", b"lock", b"a", b"1"],
        vec![b"HBLOCK.INFO", b"lock"],
    ] {
        assert!(error_of(&mut c, &args).starts_with("NOPERM"), "{args:?}");
    }
    assert_eq!(
        crate::support::state(&mut admin, "lock"),
        "held",
        "nothing changed"
    );
    // Commands are granted by name (on 7.0 module commands have no ACL
    // category): a user with only HBLOCK.INFO can look but not take.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("reader")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+hblock.info")
        .query(&mut admin)
        .unwrap();
    let mut r = server.conn();
    let _: () = redis::cmd("AUTH")
        .arg("reader")
        .arg("pw")
        .query(&mut r)
        .unwrap();
    assert!(error_of(&mut r, &[b"HBLOCK.ACQUIRE", b"lock2", b"o"]).starts_with("NOPERM"));
    let info: redis::Value = redis::cmd("HBLOCK.INFO").arg("lock").query(&mut r).unwrap();
    assert!(matches!(info, Value::Array(_)), "{info:?}");
}

/// Where the server has `RedisModule_SetCommandACLCategories` (Redis 7.2+,
/// Valkey), the commands carry ACL categories and `+@read` / `+@write` grant
/// them; on Redis 7.0 they have none and only names grant them.
#[test]
fn acl_categories_follow_what_the_server_supports() {
    let server = Server::start();
    let mut admin = server.conn();
    let version = crate::support::info_field(&mut admin, "server", "redis_version").unwrap();
    let valkey = crate::support::info_field(&mut admin, "server", "valkey_version").is_some();
    let has_api = valkey || version.as_str() >= "7.2";
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("HBLOCK.INFO")
        .arg("HBLOCK.ACQUIRE")
        .query(&mut admin)
        .unwrap();
    let categories = |entry: &Value| -> Vec<String> {
        let Value::Array(fields) = entry else {
            panic!("COMMAND INFO entry {entry:?}");
        };
        match fields.get(6) {
            Some(Value::Array(cats)) => cats
                .iter()
                .map(|c| match c {
                    Value::SimpleString(s) => s.clone(),
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("category {other:?}"),
                })
                .collect(),
            other => panic!("categories {other:?}"),
        }
    };
    let (read_cats, write_cats) = (categories(&info[0]), categories(&info[1]));
    if !has_api {
        assert!(
            read_cats.is_empty() && write_cats.is_empty(),
            "{read_cats:?}"
        );
        return;
    }
    assert!(
        read_cats.contains(&"@read".to_string()) && read_cats.contains(&"@fast".to_string()),
        "{read_cats:?}"
    );
    assert!(
        write_cats.contains(&"@write".to_string()) && write_cats.contains(&"@blocking".to_string()),
        "{write_cats:?}"
    );
    // The categories grant the commands.
    for (user, category) in [("r", "+@read"), ("w", "+@write")] {
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", user, "on", ">pw", "~*", category])
            .query(&mut admin)
            .unwrap();
    }
    let mut r = server.conn();
    let _: () = redis::cmd("AUTH").arg("r").arg("pw").query(&mut r).unwrap();
    let _: Value = redis::cmd("HBLOCK.INFO").arg("k").query(&mut r).unwrap();
    assert!(error_of(&mut r, &[b"HBLOCK.ACQUIRE", b"k", b"o"]).starts_with("NOPERM"));
    let mut w = server.conn();
    let _: () = redis::cmd("AUTH").arg("w").arg("pw").query(&mut w).unwrap();
    let token: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("k")
        .arg("o")
        .query(&mut w)
        .unwrap();
    assert_eq!(token, 1);
}

/// FENCED only reads the lock: a read-only key pattern (`%R~`) covers it,
/// while the wrapped write needs write permission on its own key.
#[test]
fn a_read_only_pattern_covers_the_lock_of_a_fenced_write() {
    let server = Server::start();
    let mut admin = server.conn();
    let token = acquire(&mut admin, "lock:l", "o", &[]).unwrap().to_string();
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "w",
            "on",
            ">pw",
            "%R~lock:*",
            "~data:*",
            "+hblock.fenced",
            "+set",
        ])
        .query(&mut admin)
        .unwrap();
    let mut w = server.conn_as("w", "pw");
    let set: String = call(
        &mut w,
        &[
            b"HBLOCK.FENCED",
            b"lock:l",
            b"o",
            token.as_bytes(),
            b"SET",
            b"data:x",
            b"1",
        ],
    )
    .unwrap();
    assert_eq!(set, "OK");
    // A write to a key it may only read is still refused.
    let denied = error_of(
        &mut w,
        &[
            b"HBLOCK.FENCED",
            b"lock:l",
            b"o",
            token.as_bytes(),
            b"SET",
            b"lock:other",
            b"1",
        ],
    );
    assert!(denied.starts_with("NOPERM"), "{denied}");
    let flags: Value = redis::cmd("COMMAND")
        .arg(&[
            "GETKEYSANDFLAGS",
            "HBLOCK.FENCED",
            "lock:l",
            "o",
            "1",
            "SET",
            "data:x",
            "1",
        ])
        .query(&mut admin)
        .unwrap();
    let text = format!("{flags:?}");
    assert!(text.contains("RO") && text.contains("OW"), "{text}");
}
