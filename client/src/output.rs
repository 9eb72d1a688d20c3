//! What the CLI prints: lock info as text or JSON, owners, URLs for
//! messages (password masked).

use crate::commands::LockInfo;
use crate::owner::hex;
pub use crate::owner::owner_text;
use serde_json::{Map, Value};

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
    fields.insert("state".into(), Value::from(info.state.as_str()));
    insert_owner(&mut fields, info.owner.as_deref());
    for (name, value) in info.numbers() {
        fields.insert(name.into(), Value::from(value));
    }
    Value::Object(fields).to_string()
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
