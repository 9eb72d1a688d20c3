//! Argument parsing and range checks shared by the commands. Works on bytes:
//! keys and owners are binary-safe and never assumed to be UTF-8.

use crate::owner::MAX_OWNER_LEN;

/// A malformed argument; the module turns each into its `ERR ...` reply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Invalid {
    /// An unknown, repeated or incomplete option.
    Syntax,
    /// A number outside its range, or not a number at all.
    Range {
        what: &'static str,
        min: i64,
        max: i64,
    },
    /// An owner that is empty or longer than 1024 bytes.
    Owner,
}

pub use crate::limits::{INTERVAL_MAX, MISSES_MAX, WAIT_MAX};
use crate::limits::{INTERVAL_MIN, LIMIT_MAX, LIMIT_MIN, MISSES_MIN, TOKEN_MAX};

/// Parses a decimal integer the way Redis does (`string2ll`): an optional `-`,
/// no `+`, no spaces, no leading zeros, no overflow.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    let first = *digits.first()?;
    if !first.is_ascii_digit() || (first == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(b - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

/// An integer in `min..=max`, or an `ERR` naming `what` and the range.
pub fn int_in_range(bytes: &[u8], what: &'static str, min: i64, max: i64) -> Result<i64, Invalid> {
    match parse_i64(bytes) {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(Invalid::Range { what, min, max }),
    }
}

pub fn owner(bytes: &[u8]) -> Result<&[u8], Invalid> {
    if bytes.is_empty() || bytes.len() > MAX_OWNER_LEN {
        return Err(Invalid::Owner);
    }
    Ok(bytes)
}

/// A fencing token: a positive integer.
pub fn token(bytes: &[u8]) -> Result<u64, Invalid> {
    int_in_range(bytes, "token", 1, TOKEN_MAX).map(|t| t as u64)
}

/// The options of HBLOCK.ACQUIRE, each at most once, any order, any case.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct AcquireOptions {
    pub interval_ms: Option<u32>,
    pub misses: Option<u16>,
    /// Some(0) waits without limit.
    pub wait_ms: Option<u64>,
    /// BIND: the grace in ms after the connection closes; `Some(None)` when
    /// it is not an integer from 0 up. Checked against the lease's length by
    /// [`bind_fits`] once the terms are known, so that its error names the
    /// real bound (`interval * misses`).
    pub bind_ms: Option<Option<u64>>,
    /// LIMIT: how many owners may hold the lock at once (None: 1).
    pub limit: Option<u16>,
}

/// A lock's limit (ACQUIRE's LIMIT, HBLOCK.LIMIT's n): 1 to 1000.
pub fn limit(bytes: &[u8]) -> Result<u16, Invalid> {
    let (min, max) = (i64::from(LIMIT_MIN), i64::from(LIMIT_MAX));
    int_in_range(bytes, "LIMIT", min, max).map(|n| n as u16)
}

pub fn acquire_options(args: &[&[u8]]) -> Result<AcquireOptions, Invalid> {
    let mut opts = AcquireOptions::default();
    let mut rest = args;
    while let Some((name, after)) = rest.split_first() {
        let (value, after) = after.split_first().ok_or(Invalid::Syntax)?;
        rest = after;
        if name.eq_ignore_ascii_case(b"INTERVAL") && opts.interval_ms.is_none() {
            opts.interval_ms =
                Some(int_in_range(value, "INTERVAL", INTERVAL_MIN, INTERVAL_MAX)? as u32);
        } else if name.eq_ignore_ascii_case(b"MISSES") && opts.misses.is_none() {
            opts.misses = Some(int_in_range(value, "MISSES", MISSES_MIN, MISSES_MAX)? as u16);
        } else if name.eq_ignore_ascii_case(b"WAIT") && opts.wait_ms.is_none() {
            opts.wait_ms = Some(int_in_range(value, "WAIT", 0, WAIT_MAX)? as u64);
        } else if name.eq_ignore_ascii_case(b"BIND") && opts.bind_ms.is_none() {
            opts.bind_ms = Some(parse_i64(value).and_then(|v| u64::try_from(v).ok()));
        } else if name.eq_ignore_ascii_case(b"LIMIT") && opts.limit.is_none() {
            opts.limit = Some(limit(value)?);
        } else {
            return Err(Invalid::Syntax);
        }
    }
    Ok(opts)
}

/// A BIND grace (None: not an integer from 0 up) fits the lease it binds:
/// 0 ..= interval * misses. The grace, or the error naming that bound.
pub fn bind_fits(bind_ms: Option<u64>, lease_ms: u64) -> Result<u64, Invalid> {
    match bind_ms {
        Some(grace) if grace <= lease_ms => Ok(grace),
        _ => Err(Invalid::Range {
            what: "BIND",
            min: 0,
            max: i64::try_from(lease_ms).unwrap_or(i64::MAX),
        }),
    }
}

/// HBLOCK.WATCH's `[SEEN token] [TIMEOUT ms]`, any order, each at most once:
/// (seen, timeout ms), defaults 0 and 0.
pub fn watch_options(args: &[&[u8]]) -> Result<(u64, u64), Invalid> {
    let (mut seen, mut timeout) = (None, None);
    let mut rest = args;
    while let Some((name, after)) = rest.split_first() {
        let (value, after) = after.split_first().ok_or(Invalid::Syntax)?;
        rest = after;
        if name.eq_ignore_ascii_case(b"SEEN") && seen.is_none() {
            seen = Some(int_in_range(value, "SEEN", 0, TOKEN_MAX)? as u64);
        } else if name.eq_ignore_ascii_case(b"TIMEOUT") && timeout.is_none() {
            timeout = Some(int_in_range(value, "TIMEOUT", 0, WAIT_MAX)? as u64);
        } else {
            return Err(Invalid::Syntax);
        }
    }
    Ok((seen.unwrap_or(0), timeout.unwrap_or(0)))
}

/// HBLOCK.WAITERS's default COUNT.
pub const WAITERS_COUNT_DEFAULT: u64 = 100;

/// HBLOCK.WAITERS's `[COUNT n]` (any case, at most once): how many waiters
/// to list, a positive integer, [`WAITERS_COUNT_DEFAULT`] when not given.
pub fn waiters_options(args: &[&[u8]]) -> Result<u64, Invalid> {
    match args {
        [] => Ok(WAITERS_COUNT_DEFAULT),
        [name, value] if name.eq_ignore_ascii_case(b"COUNT") => {
            int_in_range(value, "COUNT", 1, TOKEN_MAX).map(|n| n as u64)
        }
        _ => Err(Invalid::Syntax),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_count_positive_once() {
        assert_eq!(waiters_options(&[]), Ok(WAITERS_COUNT_DEFAULT));
        assert_eq!(waiters_options(&[b"count", b"3"]), Ok(3));
        for bad in [&b"0"[..], b"-1", b"x", b"1.5", b""] {
            assert!(
                matches!(
                    waiters_options(&[b"COUNT", bad]),
                    Err(Invalid::Range { what: "COUNT", .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(waiters_options(&[b"COUNT"]), Err(Invalid::Syntax));
        assert_eq!(
            waiters_options(&[b"COUNT", b"1", b"COUNT", b"2"]),
            Err(Invalid::Syntax)
        );
        assert_eq!(waiters_options(&[b"LIMIT", b"1"]), Err(Invalid::Syntax));
    }

    #[test]
    fn watch_options_any_order_each_once() {
        assert_eq!(watch_options(&[]), Ok((0, 0)));
        assert_eq!(
            watch_options(&[b"timeout", b"5", b"SEEN", b"7"]),
            Ok((7, 5))
        );
        assert_eq!(
            watch_options(&[b"SEEN", b"1", b"SEEN", b"2"]),
            Err(Invalid::Syntax)
        );
        assert_eq!(watch_options(&[b"SEEN"]), Err(Invalid::Syntax));
        assert!(matches!(
            watch_options(&[b"SEEN", b"-1"]),
            Err(Invalid::Range { what: "SEEN", .. })
        ));
    }

    #[test]
    fn integers_parse_like_redis() {
        let table: [(&[u8], Option<i64>); 14] = [
            (b"0", Some(0)),
            (b"1", Some(1)),
            (b"-7", Some(-7)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"9223372036854775808", None),
            (b"", None),
            (b"-", None),
            (b"+1", None),
            (b"01", None),
            (b"-0", None),
            (b" 1", None),
            (b"1.5", None),
            (b"1\0", None),
        ];
        for (input, want) in table {
            assert_eq!(
                parse_i64(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn options_any_order_any_case_once() {
        let opts = acquire_options(&[
            b"wait",
            b"0",
            b"Misses",
            b"5",
            b"bind",
            b"100",
            b"INTERVAL",
            b"250",
        ])
        .unwrap();
        assert_eq!(
            opts,
            AcquireOptions {
                interval_ms: Some(250),
                misses: Some(5),
                wait_ms: Some(0),
                bind_ms: Some(Some(100)),
                limit: None,
            }
        );
        assert_eq!(acquire_options(&[]), Ok(AcquireOptions::default()));
    }

    #[test]
    fn option_errors() {
        let syntax: [&[&[u8]]; 6] = [
            &[b"BIND"],
            &[b"BIND", b"1", b"bind", b"1"],
            &[b"INTERVAL"],
            &[b"INTERVAL", b"5", b"interval", b"6"],
            &[b"TTL", b"5"],
            &[b"WAIT", b"1", b"MISSES"],
        ];
        for args in syntax {
            assert_eq!(acquire_options(args), Err(Invalid::Syntax));
        }
        // BIND's range is the lease's, known only later (bind_fits).
        for bad in [&b"-1"[..], b"x", b"", b"+1", b"99999999999999999999"] {
            assert_eq!(
                acquire_options(&[b"BIND", bad]).map(|o| o.bind_ms),
                Ok(Some(None))
            );
        }
        assert_eq!(
            acquire_options(&[b"BIND", b"864000000001"]).map(|o| o.bind_ms),
            Ok(Some(Some(864_000_000_001)))
        );
        let range: [(&[&[u8]], &str); 6] = [
            (&[b"INTERVAL", b"0"], "INTERVAL"),
            (&[b"INTERVAL", b"86400001"], "INTERVAL"),
            (&[b"MISSES", b"10001"], "MISSES"),
            (&[b"MISSES", b"abc"], "MISSES"),
            (&[b"WAIT", b"-1"], "WAIT"),
            (&[b"WAIT", b"99999999999999999999"], "WAIT"),
        ];
        for (args, what) in range {
            match acquire_options(args) {
                Err(Invalid::Range { what: got, .. }) => assert_eq!(got, what),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bind_fits_the_lease() {
        assert_eq!(bind_fits(Some(0), 1), Ok(0));
        assert_eq!(bind_fits(Some(3000), 3000), Ok(3000));
        for bad in [Some(3001), None] {
            assert_eq!(
                bind_fits(bad, 3000),
                Err(Invalid::Range {
                    what: "BIND",
                    min: 0,
                    max: 3000
                })
            );
        }
    }

    #[test]
    fn owners_and_tokens() {
        assert_eq!(owner(b""), Err(Invalid::Owner));
        assert_eq!(owner(&[0u8; 1025]), Err(Invalid::Owner));
        assert_eq!(owner(&[0u8; 1024]).map(|o| o.len()), Ok(1024));
        assert!(token(b"0").is_err());
        assert!(token(b"-1").is_err());
        assert_eq!(token(b"9223372036854775807"), Ok(i64::MAX as u64));
    }
}
