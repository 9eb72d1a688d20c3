//! The client's errors, as data: what the server or the network said, and
//! the two outcomes of this crate's own that are not Redis errors; and their
//! class, decided here once for the CLI and the library: **transient**
//! (retried under the fault policy) or **fatal** (ends at once, with a hint
//! that says what to do).

use hblock_core::proto::NOTHELD;
use redis::RedisError;

#[derive(Debug)]
pub enum Error {
    /// Redis could not be reached, or answered an error of its own.
    Redis(RedisError),
    /// The caller does not hold the lease (the server's `NOTHELD <why>`).
    NotHeld(String),
    /// Fewer replicas than asked acknowledged a grant in time; the lease was
    /// released.
    NoReplicas { acked: i64, wanted: u32 },
}

/// What kind of failure an [`Error`] is ([`Error::class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Worth retrying: connection refused/reset/closed, timeouts, LOADING,
    /// TRYAGAIN, MASTERDOWN, CLUSTERDOWN, READONLY (after a failover), BUSY,
    /// no Sentinel answering or Sentinel naming no master yet.
    Transient,
    /// The caller does not hold the lease (NOTHELD): not retried, not fatal.
    NotHeld,
    /// The server needs a password and none was given (NOAUTH).
    NeedsPassword,
    /// The user name or password was refused (WRONGPASS).
    WrongPassword,
    /// The server does not know the HBLOCK commands.
    ModuleMissing,
    /// The ACL user may not run the command or use the key (NOPERM).
    NoPermission,
    /// The key holds another type.
    WrongType,
    /// The lock has holders or waiters under another LIMIT (`ERR LIMIT n
    /// does not match the lock's limit m`).
    LimitMismatch,
    /// A bad URL, or a cluster/Sentinel configuration error (a master name
    /// no Sentinel monitors).
    Configuration,
    /// Any other error reply, or too few replicas: fatal, no hint.
    Other,
}

impl Class {
    /// What to do about it, for the classes that have an answer.
    pub fn hint(self) -> Option<&'static str> {
        Some(match self {
            Class::NeedsPassword => "the server needs a password: put it in the URL (redis://:PASSWORD@host:port) or in HBLOCK_REDIS_URL",
            Class::WrongPassword => "wrong user name or password in the URL",
            Class::ModuleMissing => "is the hblock module loaded? (loadmodule /path/to/libhblock.so)",
            Class::NoPermission => "the ACL user may not run this command or use this key: grant it the hblock commands and the key",
            Class::WrongType => "the key holds another type, not an hblock lock",
            Class::LimitMismatch => "every holder and waiter of a lock gives the same limit: use the lock's (hblock info KEY shows it), or change it with HBLOCK.LIMIT KEY N",
            Class::Configuration => "check the URL",
            Class::Transient | Class::NotHeld | Class::Other => return None,
        })
    }
}

/// `desc` of the errors [`on_sentinel`] makes: a Sentinel's own answer.
const SENTINEL_SIDE: &str = "Sentinel";
/// `desc` of the errors [`on_data_node`] makes.
const DATA_NODE_SIDE: &str = "data node";

/// `err` as said by the Sentinel at `addr`, for errors that need a fix on
/// that side (its password, its ACL, the master name); others unchanged.
pub(crate) fn on_sentinel(addr: &str, err: RedisError) -> RedisError {
    on_side(SENTINEL_SIDE, addr, err)
}

/// `err` as said by the data node at `addr` (found through Sentinel).
pub(crate) fn on_data_node(addr: &str, err: RedisError) -> RedisError {
    on_side(DATA_NODE_SIDE, addr, err)
}

fn on_side(side: &'static str, addr: &str, err: RedisError) -> RedisError {
    match classify(&err) {
        Class::NeedsPassword
        | Class::WrongPassword
        | Class::NoPermission
        | Class::Configuration => {
            RedisError::from((err.kind(), side, format!("{addr}: {}", plain(&err))))
        }
        _ => err,
    }
}

/// The error's own words: `WRONGTYPE Operation against ...` for a server's
/// reply, the description for the crate's own errors.
fn plain(err: &RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        // The crate's "description - Kind: detail" without its kind's name.
        _ => err.to_string().replace(&format!(" - {:?}", err.kind()), ""),
    }
}

/// The class of a Redis error, from its kind, code and words (errors on the
/// Sentinel side keep the words of the original in their detail).
fn classify(err: &RedisError) -> Class {
    use redis::ErrorKind;
    let text = format!("{err}").to_ascii_lowercase();
    let code = err.code().unwrap_or_default();
    if err.kind() == ErrorKind::AuthenticationFailed
        || code == "WRONGPASS"
        || text.contains("wrongpass")
        || text.contains("invalid username-password")
    {
        return Class::WrongPassword;
    }
    if code == "NOAUTH"
        || text.contains("noauth")
        || text.contains("authentication required")
        // An unauthenticated client's command of more than 10 arguments.
        || text.contains("protocol error: unauthenticated")
    {
        return Class::NeedsPassword;
    }
    if code == "NOPERM" || text.contains("noperm") {
        return Class::NoPermission;
    }
    if code == "WRONGTYPE" {
        return Class::WrongType;
    }
    if text.contains("does not match the lock's limit") {
        return Class::LimitMismatch;
    }
    if text.contains("unknown command") && text.contains("hblock.") {
        return Class::ModuleMissing;
    }
    if matches!(
        err.kind(),
        ErrorKind::InvalidClientConfig | ErrorKind::EmptySentinelList
    )
        // The URL's /db is more than the server's `databases`.
        || text.contains("db index is out of range")
        // A redis+sentinel:// URL naming a data node, not a Sentinel.
        || (text.contains("unknown command") && text.contains("'sentinel'"))
    {
        return Class::Configuration;
    }
    let transient = err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        // Sentinel has no master to name yet (a failover under way).
        || matches!(
            err.kind(),
            ErrorKind::MasterNameNotFoundBySentinel | ErrorKind::NoValidReplicasFoundBySentinel
        )
        || matches!(
            code,
            "LOADING" | "READONLY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "BUSY" | "UNBLOCKED"
        );
    if transient {
        Class::Transient
    } else {
        Class::Other
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Redis(err) => write!(f, "{}", describe(err)),
            Error::NotHeld(why) => write!(f, "{NOTHELD} {why}"),
            Error::NoReplicas { acked, wanted } => write!(
                f,
                "only {acked} of {wanted} replicas acknowledged the grant; released it"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The class of this error, decided once for the CLI and the library.
    pub fn class(&self) -> Class {
        match self {
            Error::Redis(err) => classify(err),
            Error::NotHeld(_) => Class::NotHeld,
            Error::NoReplicas { .. } => Class::Other,
        }
    }

    /// Worth retrying on a new connection: the network, a server that is
    /// loading, read-only after a failover, busy, or between masters
    /// (Sentinel naming no master yet included).
    pub fn is_transient(&self) -> bool {
        self.class() == Class::Transient
    }

    /// Retrying cannot help: a password, the module, an ACL, the key's type,
    /// the URL or any other error reply. The CLI exits 3 with
    /// [`Error::hint`].
    pub fn is_fatal(&self) -> bool {
        !matches!(self.class(), Class::Transient | Class::NotHeld)
    }

    pub fn is_not_held(&self) -> bool {
        matches!(self, Error::NotHeld(_))
    }

    /// A timeout (a hung server) as `timed out after N ms` (`limit`)
    /// rather than the socket's `Resource temporarily unavailable`; None
    /// for any other error.
    pub fn timed_out(&self, limit: std::time::Duration) -> Option<Error> {
        match self {
            Error::Redis(err) if err.is_timeout() => Some(timeout_error(limit)),
            _ => None,
        }
    }

    /// What to do about a fatal error, when there is a known answer.
    pub fn hint(&self) -> Option<String> {
        let hint = self.class().hint()?;
        let sentinel_side = match self {
            Error::Redis(err) => err.to_string().starts_with(SENTINEL_SIDE),
            _ => false,
        };
        let not_a_sentinel = match self {
            Error::Redis(err) if sentinel_side => {
                let detail = err.detail().unwrap_or_default();
                detail
                    .to_ascii_lowercase()
                    .contains("unknown command")
                    .then(|| {
                        detail
                            .split_once(": ")
                            .map_or("", |(addr, _)| addr)
                            .to_string()
                    })
            }
            _ => None,
        };
        Some(match self.class() {
            Class::Configuration if not_a_sentinel.is_some() => format!(
                "check the URL: {} is not a Sentinel (redis+sentinel:// names the Sentinels, host:port[,host:port...])",
                not_a_sentinel.unwrap_or_default()
            ),
            Class::NeedsPassword | Class::WrongPassword if sentinel_side => format!(
                "{hint} (the Sentinels' own password goes in ?sentinel_password=..., the user in &sentinel_username=...)"
            ),
            _ => hint.to_string(),
        })
    }
}

/// A transient timeout error that reads `timed out after N ms`.
pub(crate) fn timeout_error(limit: std::time::Duration) -> Error {
    Error::Redis(RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("timed out after {} ms", limit.as_millis()),
    )))
}

/// A Redis reply `NOTHELD ...` becomes [`Error::NotHeld`]; everything else
/// stays a Redis error.
impl From<RedisError> for Error {
    fn from(err: RedisError) -> Self {
        if err.code() == Some(NOTHELD) {
            Error::NotHeld(err.detail().unwrap_or("").to_string())
        } else {
            Error::Redis(err)
        }
    }
}

/// A Redis error as the server said it (`WRONGTYPE Operation against ...`),
/// or, for an error on one side of a Sentinel setup, `Sentinel
/// 10.0.0.1:26379: ...` / `data node 10.0.0.5:6379: ...`.
fn describe(err: &RedisError) -> String {
    let text = err.to_string();
    for side in [SENTINEL_SIDE, DATA_NODE_SIDE] {
        if let (true, Some(detail)) = (text.starts_with(&format!("{side} - ")), err.detail()) {
            return format!("{side} {detail}");
        }
    }
    plain(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::ErrorKind;

    fn server(code: &str, detail: &str) -> Error {
        let wire = format!("-{code} {detail}\r\n");
        let value = redis::parse_redis_value(wire.as_bytes()).expect("a RESP error");
        match value.extract_error() {
            Err(err) => Error::from(err),
            Ok(_) => panic!("not an error"),
        }
    }

    #[test]
    fn each_reply_has_its_class_and_hint() {
        for (code, detail, class) in [
            ("NOAUTH", "Authentication required.", Class::NeedsPassword),
            (
                "ERR",
                "Protocol error: unauthenticated multibulk length",
                Class::NeedsPassword,
            ),
            (
                "WRONGPASS",
                "invalid username-password pair or user is disabled.",
                Class::WrongPassword,
            ),
            (
                "NOPERM",
                "this user has no permissions",
                Class::NoPermission,
            ),
            ("WRONGTYPE", "Operation against a key", Class::WrongType),
            (
                "ERR",
                "unknown command 'HBLOCK.INFO', with args beginning with: 'k'",
                Class::ModuleMissing,
            ),
            ("LOADING", "Redis is loading", Class::Transient),
            ("READONLY", "You can't write", Class::Transient),
            ("BUSY", "Redis is busy running a script", Class::Transient),
            ("MASTERDOWN", "Link with MASTER is down", Class::Transient),
            ("ERR", "DB index is out of range", Class::Configuration),
            (
                "ERR",
                "LIMIT 2 does not match the lock's limit 3",
                Class::LimitMismatch,
            ),
            ("ERR", "syntax error", Class::Other),
        ] {
            let err = server(code, detail);
            assert_eq!(err.class(), class, "{code} {detail}");
            assert_eq!(err.is_fatal(), class != Class::Transient, "{code}");
            assert_eq!(err.hint().is_some(), class.hint().is_some());
        }
        assert_eq!(server("NOTHELD", "x").class(), Class::NotHeld);
        assert!(!server("NOTHELD", "x").is_fatal());
    }

    #[test]
    fn the_crates_own_errors_are_classified_too() {
        let refused = Error::from(RedisError::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(refused.class(), Class::Transient);
        let auth = Error::from(RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        )));
        assert_eq!(auth.class(), Class::WrongPassword);
        let url = Error::from(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "Redis URL did not parse",
        )));
        assert_eq!(url.class(), Class::Configuration);
        assert_eq!(url.hint().as_deref(), Some("check the URL"));
    }

    #[test]
    fn errors_on_the_sentinel_side_say_so() {
        let Error::Redis(raw) = server("WRONGPASS", "invalid username-password pair") else {
            panic!("a Redis error");
        };
        let err = Error::from(on_sentinel("127.0.0.1:26379", raw.clone()));
        assert_eq!(err.class(), Class::WrongPassword);
        assert_eq!(
            err.to_string(),
            "Sentinel 127.0.0.1:26379: WRONGPASS invalid username-password pair"
        );
        assert!(err.hint().is_some_and(|h| h.contains("sentinel_password")));
        let node = Error::from(on_data_node("10.0.0.5:6379", raw));
        assert_eq!(
            node.to_string(),
            "data node 10.0.0.5:6379: WRONGPASS invalid username-password pair"
        );
        assert_eq!(
            node.hint().as_deref(),
            Some("wrong user name or password in the URL")
        );
        // Transient errors are left as they are.
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(Error::from(on_sentinel("h:1", io)).is_transient());
    }
}
