//! What the CLI prints: lock info as text or JSON, owners, URLs for
//! messages (password masked).

use crate::commands::{Ended, Holding, LockInfo, Waiter};
use crate::owner::hex;
use serde_json::{Map, Value};

/// A key or an owner for a text line: UTF-8 as it is with its control
/// characters escaped (`\n`, `\r`, `\t`, others as `\u{1b}`), so a key
/// or an owner can neither forge lines nor send terminal escapes; bytes
/// that are not UTF-8 as `0x`-prefixed hex. Every text line of `ls`,
/// `info` and `watch` prints keys and owners through it (JSON output has
/// its own escaping).
pub fn owner_text(bytes: &[u8]) -> String {
    crate::log::escape_controls(&crate::owner::owner_text(bytes))
}

/// A URL with its passwords (the user's, a Sentinel URL's
/// `sentinel_password=`, a unix socket URL's `pass=`/`password=`)
/// replaced by `***`, for messages.
pub fn mask_password(url: &str) -> String {
    let masked = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        },
        None => url.to_string(),
    };
    let Some((base, query)) = masked.split_once('?') else {
        return masked;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name @ ("sentinel_password" | "password" | "pass"), _)) => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// The one line of an error that ends a command:
/// `{KEY}: {MASKED_URL}: {ERROR}: {HINT}` (no hint when there is none to
/// give). `subject` is the lock's key, or the command's name.
pub fn error_line(subject: &str, masked_url: &str, err: &crate::error::Error) -> String {
    match err.hint() {
        Some(hint) => format!("{subject}: {masked_url}: {err}: {hint}"),
        None => format!("{subject}: {masked_url}: {err}"),
    }
}

pub fn info_text(info: &LockInfo) -> String {
    let mut out = format!("state      {}\n", info.state);
    out.push_str(&format!(
        "owner      {}\n",
        info.owner.as_deref().map_or("(none)".into(), owner_text)
    ));
    for (name, value) in info.numbers() {
        out.push_str(&format!("{name:<10} {value}\n"));
    }
    out.trim_end().to_string()
}

/// `hblock info`: INFO's lines; on a lock of LIMIT > 1 one line per holder
/// in token order (`holder     owner=... token=N ttl=MS missed=N beats=N
/// age=MS bound=0|1`); then one line per waiter in queue order
/// (`waiter     owner=... waited=MS timeout=MS|-1 client=ID`), and
/// `waiter     ... N more` when INFO counts more than were listed.
pub fn info_text_full(
    info: &LockInfo,
    holders: Option<&[Holding]>,
    waiters: Option<&[Waiter]>,
) -> String {
    let mut out = info_text(info);
    for h in holders.unwrap_or_default() {
        out.push('\n');
        out.push_str(&holder_text(h));
    }
    let Some(waiters) = waiters else {
        return out;
    };
    for w in waiters {
        out.push_str(&format!(
            "\nwaiter     owner={} waited={} timeout={} client={}",
            owner_text(&w.owner),
            w.waited,
            w.timeout,
            w.client
        ));
    }
    let more = usize::try_from(info.waiters)
        .unwrap_or(0)
        .saturating_sub(waiters.len());
    if more > 0 && !waiters.is_empty() {
        out.push_str(&format!("\nwaiter     ... {more} more"));
    }
    out
}

/// One holder of a lock of LIMIT > 1, as `hblock info` and `hblock watch`
/// print it: `holder     owner=... token=N ttl=MS missed=N beats=N age=MS
/// bound=0|1`.
pub fn holder_text(h: &Holding) -> String {
    format!(
        "holder     owner={} token={} ttl={} missed={} beats={} age={} bound={}",
        owner_text(&h.owner),
        h.token,
        h.ttl,
        h.missed,
        h.beats,
        h.age,
        h.bound
    )
}

/// A holder as a JSON object: HBLOCK.HOLDERS's fields, in its order.
fn holder_json(h: &Holding) -> Value {
    let mut entry = Map::new();
    insert_owner(&mut entry, Some(&h.owner));
    for (name, value) in h.numbers() {
        entry.insert(name.into(), Value::from(value));
    }
    Value::Object(entry)
}

/// `hblock info --json`: [`info_json`]'s fields; on a lock of LIMIT > 1
/// `holders_list`, an array of HBLOCK.HOLDERS's entries (`{owner, token,
/// interval, misses, missed, ttl, beats, age, bound}`) in token order; then
/// `waiters_list`, an array of `{owner, waited, timeout, client}` in queue
/// order (each left out when it could not be read).
pub fn info_json_full(
    info: &LockInfo,
    holders: Option<&[Holding]>,
    waiters: Option<&[Waiter]>,
) -> String {
    let mut fields = Map::new();
    insert_info(&mut fields, info);
    if let Some(holders) = holders {
        let list = holders.iter().map(holder_json).collect();
        fields.insert("holders_list".into(), Value::Array(list));
    }
    if let Some(waiters) = waiters {
        let list = waiters
            .iter()
            .map(|w| {
                let mut entry = Map::new();
                insert_owner(&mut entry, Some(&w.owner));
                entry.insert("waited".into(), Value::from(w.waited));
                entry.insert("timeout".into(), Value::from(w.timeout));
                entry.insert("client".into(), Value::from(w.client));
                Value::Object(entry)
            })
            .collect();
        fields.insert("waiters_list".into(), Value::Array(list));
    }
    Value::Object(fields).to_string()
}

/// The last Unix ms RFC 3339 can write (9999-12-31T23:59:59.999Z).
const RFC3339_MAX_MS: i64 = 253_402_300_799_999;

/// Unix ms as RFC 3339 UTC with ms (`2026-12-05T01:02:03.456Z`); a time
/// before 1970 or past year 9999 (only a forged history has one) as its
/// raw Unix ms, `MSms` (never a panic).
fn unix_ms_text(ms: i64) -> String {
    if !(0..=RFC3339_MAX_MS).contains(&ms) {
        return format!("{ms}ms");
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.unsigned_abs());
    humantime::format_rfc3339_millis(at).to_string()
}

/// `hblock watch --history`: one past lease,
/// `ended owner=... token=N granted=TIME ended=TIME how=HOW` (times RFC 3339, UTC).
pub fn ended_text(ended: &Ended) -> String {
    format!(
        "ended owner={} token={} granted={} ended={} how={}",
        owner_text(&ended.owner),
        ended.token,
        unix_ms_text(ended.granted),
        unix_ms_text(ended.ended),
        ended.how
    )
}

/// `hblock watch --history --json`: one past lease as HBLOCK.HISTORY's
/// fields, `{"owner", "token", "granted", "ended", "how"}` (times in Unix
/// ms; an owner that is not UTF-8 as `null` plus `owner_hex`).
pub fn ended_json(ended: &Ended) -> String {
    let mut fields = Map::new();
    insert_owner(&mut fields, Some(&ended.owner));
    fields.insert("token".into(), Value::from(ended.token));
    fields.insert("granted".into(), Value::from(ended.granted));
    fields.insert("ended".into(), Value::from(ended.ended));
    fields.insert("how".into(), Value::from(ended.how.as_str()));
    Value::Object(fields).to_string()
}

/// The owner as a JSON string when it is UTF-8, else `null` plus
/// `"owner_hex"`.
fn insert_owner(fields: &mut Map<String, Value>, owner: Option<&[u8]>) {
    let text = owner.and_then(|o| std::str::from_utf8(o).ok());
    fields.insert("owner".into(), text.map_or(Value::Null, Value::from));
    if let (Some(owner), None) = (owner, text) {
        fields.insert("owner_hex".into(), Value::from(hex(owner)));
    }
}

/// INFO's field names, in INFO's order; integers as JSON numbers.
pub fn info_json(info: &LockInfo) -> String {
    let mut fields = Map::new();
    insert_info(&mut fields, info);
    Value::Object(fields).to_string()
}

fn insert_info(fields: &mut Map<String, Value>, info: &LockInfo) {
    fields.insert("state".into(), Value::from(info.state.as_str()));
    insert_owner(fields, info.owner.as_deref());
    for (name, value) in info.numbers() {
        fields.insert(name.into(), Value::from(value));
    }
}

/// `hblock ls --json`: one object per lock, `key` first (null plus
/// `key_hex` when the key is not UTF-8), then INFO's fields as
/// [`info_json`] prints them.
pub fn listed_json(key: &[u8], info: &LockInfo) -> String {
    let mut fields = Map::new();
    match std::str::from_utf8(key) {
        Ok(text) => {
            fields.insert("key".into(), Value::from(text));
        }
        Err(_) => {
            fields.insert("key".into(), Value::Null);
            fields.insert("key_hex".into(), Value::from(hex(key)));
        }
    }
    insert_info(&mut fields, info);
    Value::Object(fields).to_string()
}

/// The widest key column `hblock ls` pads to; a longer key pushes its own
/// line's fields right.
const KEY_COLUMN_MAX: usize = 40;

/// `hblock ls`: one line per lock, the key (0x-hex when not UTF-8) padded
/// to the longest key (at most 40 characters), the state padded to
/// `held-back`, then `owner= token= ttl= waiters= missed=` (owner `-` when
/// none; ttl in ms), and on a lock of LIMIT > 1 `holders=N/LIMIT` last
/// (owner, ttl and missed then are those of the lease that ends first).
pub fn listed_lines<'a>(locks: impl IntoIterator<Item = (&'a [u8], &'a LockInfo)>) -> Vec<String> {
    let rows: Vec<(String, &LockInfo)> = locks
        .into_iter()
        .map(|(key, info)| (owner_text(key), info))
        .collect();
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .min(KEY_COLUMN_MAX);
    rows.iter()
        .map(|(key, info)| {
            let line = format!(
                "{key:<width$} {:<9} owner={} token={} ttl={} waiters={} missed={}",
                info.state,
                info.owner.as_deref().map_or("-".into(), owner_text),
                info.token,
                info.ttl,
                info.waiters,
                info.missed
            );
            match info.limit {
                1 => line,
                limit => format!("{line} holders={}/{limit}", info.holders),
            }
        })
        .collect()
}

/// `hblock acquire --json`: key, owner and token (null when not granted).
pub fn acquired_json(key: &str, owner: &[u8], token: Option<i64>) -> String {
    let mut fields = Map::new();
    fields.insert("key".into(), Value::from(key));
    insert_owner(&mut fields, Some(owner));
    fields.insert("token".into(), token.map_or(Value::Null, Value::from));
    Value::Object(fields).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (review of issue 27): a history entry restored from a
    /// DUMP payload may carry any i64 time; `watch --history` panicked
    /// ("a Display implementation returned an error") on years past 9999.
    #[test]
    fn ended_text_survives_any_time() {
        for ms in [
            i64::MIN,
            -1,
            0,
            253_402_300_799_999,
            253_402_300_800_000,
            i64::MAX,
        ] {
            let ended = crate::commands::Ended {
                owner: b"x".to_vec(),
                token: 1,
                granted: ms,
                ended: ms,
                how: "released".into(),
            };
            let line = ended_text(&ended);
            assert!(line.starts_with("ended owner=x token=1 granted="), "{line}");
        }
    }

    #[test]
    fn control_characters_in_keys_and_owners_are_escaped() {
        assert_eq!(
            owner_text("a\nb\r\t\u{1b}[2J\u{0}é".as_bytes()),
            "a\\nb\\r\\t\\u{1b}[2J\\u{0}é"
        );
        assert_eq!(owner_text(b"web-1"), "web-1");
        assert_eq!(owner_text(b"\xff\n"), "0xff0a");
        let info = LockInfo {
            state: "held".into(),
            owner: Some(b"evil\nfake".to_vec()),
            token: 1,
            interval: 1000,
            misses: 3,
            missed: 0,
            ttl: 2000,
            beats: 0,
            age: 5,
            takeovers: 0,
            waiters: 0,
            bound: 0,
            limit: 1,
            holders: 1,
        };
        assert_eq!(
            info_text(&info)
                .lines()
                .filter(|l| l.starts_with("owner"))
                .count(),
            1
        );
        let lines = listed_lines([(&b"k\nforged"[..], &info)]);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].lines().count(), 1, "{}", lines[0]);
        let ended = crate::commands::Ended {
            owner: b"o\x1b[2J".to_vec(),
            token: 1,
            granted: 0,
            ended: 0,
            how: "released".into(),
        };
        assert!(!ended_text(&ended).contains('\x1b'));
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("redis://u:s3cret@h:1/0"),
            "redis://u:***@h:1/0"
        );
        assert_eq!(mask_password("redis://h:1"), "redis://h:1");
        assert_eq!(
            mask_password("redis+sentinel://u:pw@h:1,h:2/m?sentinel_password=s&x=1"),
            "redis+sentinel://u:***@h:1,h:2/m?sentinel_password=***&x=1"
        );
        assert_eq!(
            mask_password("unix:///run/redis.sock?db=1&pass=zzz"),
            "unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            mask_password("redis+unix:///s.sock?user=u&password=zzz"),
            "redis+unix:///s.sock?user=u&password=***"
        );
    }

    #[test]
    fn waiters_follow_info_and_a_cut_list_says_how_many_more() {
        let info = LockInfo {
            state: "held".into(),
            owner: Some(b"h".to_vec()),
            token: 1,
            interval: 1000,
            misses: 3,
            missed: 0,
            ttl: 2000,
            beats: 0,
            age: 5,
            takeovers: 0,
            waiters: 3,
            bound: 0,
            limit: 1,
            holders: 1,
        };
        let first = Waiter {
            owner: vec![0xff],
            waited: 7,
            timeout: -1,
            client: 4,
        };
        let text = info_text_full(&info, None, Some(std::slice::from_ref(&first)));
        assert!(
            text.ends_with("bound      0\nlimit      1\nholders    1\nwaiter     owner=0xff waited=7 timeout=-1 client=4\nwaiter     ... 2 more"),
            "{text}"
        );
        assert_eq!(info_text_full(&info, None, None), info_text(&info));
        let json = info_json_full(&info, None, Some(&[first]));
        assert!(
            json.ends_with(r#""bound":0,"limit":1,"holders":1,"waiters_list":[{"owner":null,"owner_hex":"ff","waited":7,"timeout":-1,"client":4}]}"#),
            "{json}"
        );
        assert_eq!(info_json_full(&info, None, None), info_json(&info));
    }

    #[test]
    fn every_holder_of_a_semaphore_is_shown_in_token_order() {
        let info = LockInfo {
            state: "held".into(),
            owner: Some(b"a".to_vec()),
            token: 9,
            interval: 1000,
            misses: 3,
            missed: 0,
            ttl: 1500,
            beats: 0,
            age: 5,
            takeovers: 0,
            waiters: 0,
            bound: 1,
            limit: 3,
            holders: 2,
        };
        let holding = |owner: &[u8], token, ttl| Holding {
            owner: owner.to_vec(),
            token,
            interval: 1000,
            misses: 3,
            missed: 0,
            ttl,
            beats: 2,
            age: 40,
            bound: 1,
        };
        let holders = [holding(b"b", 7, 2900), holding(b"a\n", 8, 1500)];
        let text = info_text_full(&info, Some(&holders), Some(&[]));
        assert!(
            text.ends_with("limit      3\nholders    2\nholder     owner=b token=7 ttl=2900 missed=0 beats=2 age=40 bound=1\nholder     owner=a\\n token=8 ttl=1500 missed=0 beats=2 age=40 bound=1"),
            "{text}"
        );
        let json = info_json_full(&info, Some(&holders[..1]), None);
        assert!(
            json.ends_with(r#""limit":3,"holders":2,"holders_list":[{"owner":"b","token":7,"interval":1000,"misses":3,"missed":0,"ttl":2900,"beats":2,"age":40,"bound":1}]}"#),
            "{json}"
        );
        let line = &listed_lines([(&b"k"[..], &info)])[0];
        assert!(line.ends_with(" holders=2/3"), "{line}");
    }

    #[test]
    fn a_past_lease_is_one_line() {
        let ended = Ended {
            owner: b"web-1".to_vec(),
            token: 6,
            granted: 1_764_900_000_000,
            ended: 1_764_900_003_500,
            how: "expired".into(),
        };
        assert_eq!(
            ended_text(&ended),
            "ended owner=web-1 token=6 granted=2025-12-05T02:00:00.000Z ended=2025-12-05T02:00:03.500Z how=expired"
        );
        assert_eq!(
            ended_json(&ended),
            r#"{"owner":"web-1","token":6,"granted":1764900000000,"ended":1764900003500,"how":"expired"}"#
        );
    }

    #[test]
    fn acquired_json_has_owner_and_token() {
        assert_eq!(
            acquired_json("k", b"a/1", Some(3)),
            r#"{"key":"k","owner":"a/1","token":3}"#
        );
        assert_eq!(
            acquired_json("k", b"\xff", None),
            r#"{"key":"k","owner":null,"owner_hex":"ff","token":null}"#
        );
    }
}
