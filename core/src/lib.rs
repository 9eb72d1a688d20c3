//! The pure core of hblock: everything that decides, with the clock passed
//! in and no Redis anywhere. This crate has no `redis-module` dependency, so
//! the compiler keeps it that way; the module (`src/`) is the Redis glue.
//!
//! - `lease`: the lease state machine (acquire, beat, release, expiry).
//! - `owner`: the binary-safe owner, stored inline when short.
//! - `permits`: the holders of a lock with more than one permit (LIMIT n).
//! - `queue`: the FIFO wait queues, per lock.
//! - `record`: a record's fields and their encodings (RDB, AOF, APPLY).
//! - `beat_delta`: what a beat replicates (token, beats, last beat).
//! - `schedule`: what must happen when (lease deadlines, WAIT ends).
//! - `checks`: the lease deadlines, packed per millisecond;
//!   `check_runs`: those of a loaded data set, in one run in time order;
//!   `check_entries`: how one check is packed.
//! - `bind`: leases bound to connections (BIND), due releases.
//! - `args`: argument parsing and range checks (errors as data).
//! - `limits`: every range and default, shared with the client crate.
//! - `proto`: INFO's field names and the NOTHELD code, shared with it too.
//! - `varint`: the LEB128 numbers of packed checks and compact records.

pub mod args;
pub mod beat_delta;
pub mod bind;
pub mod check_entries;
pub mod check_runs;
pub mod checks;
pub mod history;
pub mod lease;
pub mod limits;
pub mod owner;
pub mod permits;
pub mod proto;
pub mod queue;
pub mod record;
pub mod schedule;
pub mod tokens;
pub mod varint;
