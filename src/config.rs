//! Module configs: `CONFIG GET/SET hblock.<name>` and loadmodule arguments.
//! Each config's name, default and range live in its [`Numeric`]; the
//! registration table in lib.rs and the loadmodule parser read them there.

use hblock_core::args::parse_i64;
use hblock_core::lease::Terms;
use hblock_core::limits::{
    INTERVAL_DEFAULT, INTERVAL_MAX, INTERVAL_MIN, MISSES_DEFAULT, MISSES_MAX, MISSES_MIN,
};
use std::sync::atomic::{AtomicI64, Ordering};

/// `hblock.interval`: heartbeat interval of a new lease when ACQUIRE gives none.
pub static INTERVAL: AtomicI64 = AtomicI64::new(INTERVAL_DEFAULT);
/// `hblock.misses`: allowed missed beats of a new lease when ACQUIRE gives none.
pub static MISSES: AtomicI64 = AtomicI64::new(MISSES_DEFAULT);

/// `hblock.failover-delay`: ms after a promotion during which locks this
/// server's records do not show as held are not granted; -1 = the longest
/// lease known (auto), 0 = off.
pub static FAILOVER_DELAY: AtomicI64 = AtomicI64::new(FAILOVER_DELAY_DEFAULT);
const FAILOVER_DELAY_DEFAULT: i64 = hblock_core::tokens::DELAY_AUTO;
/// The longest lease there can be.
const FAILOVER_DELAY_MAX: i64 = INTERVAL_MAX * MISSES_MAX;

pub fn failover_delay() -> i64 {
    FAILOVER_DELAY.load(Ordering::Relaxed)
}

/// `hblock.history`: lease ends each lock keeps in its record (0: none,
/// the default; lowering it trims each lock at its next lease end).
pub static HISTORY: AtomicI64 = AtomicI64::new(0);

/// The holder history's length now, 0..=100.
pub fn history() -> u8 {
    HISTORY
        .load(Ordering::Relaxed)
        .clamp(0, hblock_core::history::HISTORY_MAX as i64) as u8
}

/// A numeric config: its name (without the `hblock.` prefix), value, default
/// and range.
pub struct Numeric {
    pub name: &'static str,
    pub value: &'static AtomicI64,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

pub const INTERVAL_CONFIG: Numeric = Numeric {
    name: "interval",
    value: &INTERVAL,
    default: INTERVAL_DEFAULT,
    min: INTERVAL_MIN,
    max: INTERVAL_MAX,
};

pub const MISSES_CONFIG: Numeric = Numeric {
    name: "misses",
    value: &MISSES,
    default: MISSES_DEFAULT,
    min: MISSES_MIN,
    max: MISSES_MAX,
};

pub const FAILOVER_DELAY_CONFIG: Numeric = Numeric {
    name: "failover-delay",
    value: &FAILOVER_DELAY,
    default: FAILOVER_DELAY_DEFAULT,
    min: hblock_core::tokens::DELAY_AUTO,
    max: FAILOVER_DELAY_MAX,
};

pub const HISTORY_CONFIG: Numeric = Numeric {
    name: "history",
    value: &HISTORY,
    default: 0,
    min: 0,
    max: hblock_core::history::HISTORY_MAX as i64,
};

/// Every config, for the loadmodule parser (lib.rs names each one).
pub const CONFIGS: [&Numeric; 4] = [
    &INTERVAL_CONFIG,
    &MISSES_CONFIG,
    &FAILOVER_DELAY_CONFIG,
    &HISTORY_CONFIG,
];

/// The terms a new lease gets by default. Redis enforces the ranges on SET;
/// the clamp only guards the conversion.
pub fn default_terms() -> Terms {
    Terms {
        interval_ms: INTERVAL
            .load(Ordering::Relaxed)
            .clamp(INTERVAL_MIN, INTERVAL_MAX) as u32,
        misses: MISSES.load(Ordering::Relaxed).clamp(MISSES_MIN, MISSES_MAX) as u16,
    }
}

/// Parses `loadmodule ... name value [name value ...]`: names are
/// case-insensitive, each at most once, every value an integer in its range.
/// Returns (index into [`CONFIGS`], value) pairs, or the one line to log.
pub fn parse_module_args(args: &[&[u8]]) -> Result<Vec<(usize, i64)>, String> {
    let mut parsed: Vec<(usize, i64)> = Vec::new();
    for pair in args.chunks(2) {
        // Escaped: a MODULE LOAD argument may hold any byte, NUL included,
        // and the log line must be a C string.
        let name = printable(pair.first().copied().unwrap_or_default());
        let Some((index, config)) = CONFIGS
            .iter()
            .enumerate()
            .find(|(_, c)| c.name.eq_ignore_ascii_case(&name))
        else {
            let known: Vec<&str> = CONFIGS.iter().map(|c| c.name).collect();
            return Err(format!(
                "unknown module argument '{name}' (known: {})",
                known.join(", ")
            ));
        };
        let Some(value) = pair.get(1) else {
            return Err(format!(
                "module argument '{}' needs a value, an integer from {} to {}",
                config.name, config.min, config.max
            ));
        };
        if parsed.iter().any(|(i, _)| *i == index) {
            return Err(format!("module argument '{}' is given twice", config.name));
        }
        match parse_i64(value).filter(|v| (config.min..=config.max).contains(v)) {
            Some(v) => parsed.push((index, v)),
            None => {
                return Err(format!(
                    "module argument '{}' is '{}': it must be an integer from {} to {}",
                    config.name,
                    printable(value),
                    config.min,
                    config.max
                ))
            }
        }
    }
    Ok(parsed)
}

/// An argument as text fit for a log line: invalid UTF-8 replaced, control
/// characters (NUL included) escaped.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// Applies parsed module arguments (after Redis loaded the config file's
/// `hblock.*` lines, so the loadmodule line wins).
pub fn apply(parsed: &[(usize, i64)]) {
    for &(index, value) in parsed {
        if let Some(config) = CONFIGS.get(index) {
            config.value.store(value, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Vec<(usize, i64)>, String> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse_module_args(&bytes)
    }

    #[test]
    fn good_arguments_any_case() {
        assert_eq!(parse(&[]), Ok(vec![]));
        assert_eq!(
            parse(&["INTERVAL", "500", "misses", "10000", "Failover-Delay", "-1"]),
            Ok(vec![(0, 500), (1, 10_000), (2, -1)])
        );
        assert_eq!(parse(&["history", "100"]), Ok(vec![(3, 100)]));
        assert!(parse(&["history", "101"]).is_err());
    }

    #[test]
    fn bad_arguments_name_the_argument_value_and_range() {
        let cases: [(&[&str], &str); 8] = [
            (
                &["interval", "0"],
                "'interval' is '0': it must be an integer from 1 to 86400000",
            ),
            (&["interval", "-5"], "'interval' is '-5'"),
            (&["interval", "99999999999"], "from 1 to 86400000"),
            (
                &["misses", "70000"],
                "'misses' is '70000': it must be an integer from 1 to 10000",
            ),
            (&["misses", "abc"], "'misses' is 'abc'"),
            (
                &["bogus", "1"],
                "unknown module argument 'bogus' (known: interval, misses, failover-delay, history)",
            ),
            (&["interval"], "'interval' needs a value"),
            (
                &["interval", "5", "Interval", "6"],
                "'interval' is given twice",
            ),
        ];
        for (args, want) in cases {
            let got = parse(args).expect_err("must be refused");
            assert!(got.contains(want), "{args:?}: {got}");
        }
    }
}
