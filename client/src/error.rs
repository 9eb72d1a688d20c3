//! The client's errors, as data: what the server or the network said, and
//! the two outcomes of this crate's own that are not Redis errors.

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
    /// Worth retrying on a new connection: the network, a server that is
    /// loading, read-only after a failover, or between masters (Sentinel
    /// naming no master yet included).
    pub fn is_transient(&self) -> bool {
        let Error::Redis(err) = self else {
            return false;
        };
        err.is_io_error()
            || err.is_connection_dropped()
            // Sentinel has no master to name yet (a failover under way).
            || matches!(
                err.kind(),
                redis::ErrorKind::MasterNameNotFoundBySentinel
                    | redis::ErrorKind::NoValidReplicasFoundBySentinel
            )
            || err.is_connection_refusal()
            || err.is_timeout()
            || matches!(
                err.code(),
                Some(
                    "LOADING"
                        | "READONLY"
                        | "MASTERDOWN"
                        | "TRYAGAIN"
                        | "CLUSTERDOWN"
                        | "UNBLOCKED"
                )
            )
    }

    pub fn is_not_held(&self) -> bool {
        matches!(self, Error::NotHeld(_))
    }
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
/// with a hint where the cause is usually elsewhere.
fn describe(err: &RedisError) -> String {
    if err.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel {
        return format!(
            "{err}; is the name in the URL the one of `sentinel monitor`? (during a failover, wait)"
        );
    }
    let (Some(code), Some(detail)) = (err.code(), err.detail()) else {
        return err.to_string();
    };
    let lower = detail.to_ascii_lowercase();
    if lower.starts_with("unknown command") && lower.contains("hblock.") {
        return format!("{code} {detail}; is the hblock module loaded? (MODULE LIST)");
    }
    format!("{code} {detail}")
}
