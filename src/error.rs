//! The module's error replies, as data. Converted to a reply string at the
//! boundary; the prefixes (`ERR`, `WRONGTYPE`, `NOTHELD`) are a contract.
//! HBLOCK.FENCED's refusals and NOPERM replies, which name the wrapped
//! command or quote the server's own text, are built in commands/fenced.rs.

use hblock_core::args::Invalid;
use hblock_core::lease::{CoreError, NotHeld};
use hblock_core::owner::MAX_OWNER_LEN;
use hblock_core::proto::NOTHELD;
use redis_module::RedisError;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// Redis's standard "wrong number of arguments" error.
    Arity,
    /// A malformed argument (syntax, range, owner), found by the core.
    Invalid(Invalid),
    WrongType,
    NotHeld(NotHeld),
    TokensExhausted,
    /// HBLOCK.APPLY or HBLOCK.FLOOR called by a normal client.
    InternalOnly(&'static std::ffi::CStr),
    /// HBLOCK.APPLY given a record that cannot exist.
    BadRecord,
    /// A lock write on a replica (even with `replica-read-only no`).
    ReadOnly,
    /// A waiter's grant would create a key while over `maxmemory`.
    Oom,
    /// BIND inside a script on a server that does not say who runs it.
    BindInScript,
    /// HBLOCK.FLOOR RESET by a user who may not run CONFIG.
    OperatorOnly,
    /// A blocked HBLOCK.WATCH whose registry entry is gone (never expected).
    WatcherLost,
    /// ACQUIRE's LIMIT (requested) differs from the lock's (current) while
    /// it has holders or waiters.
    LimitMismatch {
        requested: u16,
        current: u16,
    },
}

/// Redis's own reply when a write would go over `maxmemory`.
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

impl Error {
    pub fn message(self) -> String {
        match self {
            Error::Arity => "ERR wrong number of arguments".into(),
            Error::Invalid(Invalid::Syntax) => "ERR syntax error".into(),
            Error::Invalid(Invalid::Range { what, min, max }) => {
                format!("ERR {what} must be an integer from {min} to {max}")
            }
            Error::LimitMismatch { requested, current } => {
                format!("ERR LIMIT {requested} does not match the lock's limit {current}")
            }
            Error::Invalid(Invalid::Owner) => format!("ERR owner must be 1 to {MAX_OWNER_LEN} bytes"),
            Error::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            }
            Error::NotHeld(why) => format!("{NOTHELD} {}", not_held_reason(why)),
            Error::TokensExhausted => {
                "ERR no fencing token is left below 2^53 for this lock (its last token or the data set's floor is that high): DEL the locks whose token is that high, then run HBLOCK.FLOOR RESET (docs/guarantees.md)"
                    .into()
            }
            Error::InternalOnly(name) => format!(
                "ERR {} is internal: only the master link and AOF loading may call it",
                name.to_string_lossy()
            ),
            Error::BadRecord => "ERR invalid lock record".into(),
            Error::ReadOnly => "READONLY You can't write against a read only replica.".into(),
            Error::Oom => OOM.into(),
            Error::WatcherLost => "ERR watcher lost".into(),
            Error::OperatorOnly => "NOPERM HBLOCK.FLOOR RESET is an operator's command: this user may not run CONFIG".into(),
            Error::BindInScript => "ERR BIND inside a script needs Redis 7.2+ or Valkey (this server does not tell modules who runs a script); acquire with BIND outside the script".into(),
        }
    }
}

fn not_held_reason(why: NotHeld) -> &'static str {
    match why {
        NotHeld::NoSuchLock => "no such lock",
        NotHeld::Released => "the lease was released",
        NotHeld::Expired => "the lease expired",
        NotHeld::OtherOwner => "the lock is held by another owner",
        NotHeld::TokenMismatch => "the token does not match the current lease",
    }
}

impl From<CoreError> for Error {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::TokensExhausted => Error::TokensExhausted,
        }
    }
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Error::Invalid(invalid)
    }
}

impl From<Error> for RedisError {
    fn from(err: Error) -> Self {
        match err {
            Error::Arity => RedisError::WrongArity,
            other => RedisError::String(other.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_the_contract() {
        let table = [
            (Error::Invalid(Invalid::Syntax), "ERR syntax error"),
            (
                Error::Invalid(Invalid::Range {
                    what: "MISSES",
                    min: 1,
                    max: 10000,
                }),
                "ERR MISSES must be an integer from 1 to 10000",
            ),
            (
                Error::NotHeld(NotHeld::Expired),
                "NOTHELD the lease expired",
            ),
            (
                Error::WrongType,
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
        ];
        for (err, text) in table {
            assert_eq!(err.message(), text);
        }
    }
}
