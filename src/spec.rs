//! Command metadata for COMMAND INFO / COMMAND DOCS / COMMAND GETKEYS: arity,
//! the key spec (key at position 1) and the arguments with a summary. The
//! data lives in each command's `SPEC` (src/commands/*.rs), listed once in
//! lib.rs's registration table; this file holds the types and turns a spec
//! into Redis's structures.
//!
//! Set through `RedisModule_SetCommandInfo` after registration, because the
//! crate's `#[command]` macro needs Redis 7.2. Redis copies everything it is
//! given, so the tables here can be temporaries.

use redis_module::raw;
use std::ffi::{c_int, CStr};
use std::ptr::{null, null_mut};

#[derive(Clone, Copy)]
pub enum Kind {
    Key,
    Text,
    Integer,
    /// Any number of further arguments (FENCED's wrapped command's).
    Rest,
}

/// One argument: name, kind, and the option keyword before it (options are optional).
pub type Arg = (&'static CStr, Kind, Option<&'static CStr>);

/// Everything Redis is told about one command. Each `src/commands/<cmd>.rs`
/// exports its `SPEC`; registration (lib.rs) and COMMAND INFO/DOCS
/// ([`register`]) read the same one.
pub struct Spec {
    pub name: &'static CStr,
    /// Command flags for RedisModule_CreateCommand.
    pub flags: &'static str,
    pub summary: &'static CStr,
    /// ACL categories, set where the server supports it (7.2+).
    pub acl: &'static CStr,
    pub arity: c_int,
    /// Key-spec flags of the key at position 1: read-only or read-write, and
    /// the kind of access. 0: the command takes no key (HBLOCK.FLOOR).
    pub key_flags: u32,
    /// More keys follow in a wrapped command (HBLOCK.FENCED): an incomplete
    /// key spec, so Redis asks the command (getkeys-api).
    pub wraps: bool,
    pub args: &'static [Arg],
}

impl Spec {
    /// The first (and last) key's position for RedisModule_CreateCommand:
    /// 1, or 0 for a command without a key (HBLOCK.FLOOR).
    pub const fn first_key(&self) -> c_int {
        if self.key_flags == 0 {
            0
        } else {
            1
        }
    }
}

pub const KEY: Arg = (c"key", Kind::Key, None);
pub const OWNER: Arg = (c"owner", Kind::Text, None);
pub const TOKEN: Arg = (c"token", Kind::Integer, None);

/// The key flags of a command that reads and updates its lock.
pub const RW_UPDATE: u32 = raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE;

/// The spec of a `CMD key owner token` command (BEAT, RELEASE): a fast write.
pub const fn holder_spec(name: &'static CStr, summary: &'static CStr) -> Spec {
    Spec {
        name,
        flags: "write fast",
        acl: c"write fast",
        summary,
        arity: 4,
        key_flags: RW_UPDATE,
        wraps: false,
        args: &[KEY, OWNER, TOKEN],
    }
}

fn arg_struct(&(name, kind, token): &Arg) -> raw::RedisModuleCommandArg {
    raw::RedisModuleCommandArg {
        name: name.as_ptr(),
        type_: match kind {
            Kind::Key => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
            Kind::Text => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
            Kind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
            Kind::Rest => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
        },
        key_spec_index: if matches!(kind, Kind::Key) { 0 } else { -1 },
        token: token.map_or(null(), CStr::as_ptr),
        summary: null(),
        since: null(),
        flags: match (kind, token) {
            (Kind::Rest, _) => {
                (raw::REDISMODULE_CMD_ARG_OPTIONAL | raw::REDISMODULE_CMD_ARG_MULTIPLE) as c_int
            }
            (_, Some(_)) => raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int,
            (_, None) => raw::REDISMODULE_CMD_ARG_NONE as c_int,
        },
        deprecated_since: null(),
        subargs: null_mut(),
        display_text: null(),
    }
}

fn end_of_args() -> raw::RedisModuleCommandArg {
    raw::RedisModuleCommandArg {
        name: null(),
        type_: 0,
        key_spec_index: 0,
        token: null(),
        summary: null(),
        since: null(),
        flags: 0,
        deprecated_since: null(),
        subargs: null_mut(),
        display_text: null(),
    }
}

fn key_spec(flags: u32, pos: c_int) -> raw::RedisModuleCommandKeySpec {
    raw::RedisModuleCommandKeySpec {
        notes: null(),
        flags: u64::from(flags),
        begin_search_type: if flags == 0 {
            0
        } else {
            raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX
        },
        bs: raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
            index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos },
        },
        find_keys_type: if flags == 0 {
            0
        } else {
            raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE
        },
        fk: raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
            range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                lastkey: 0,
                keystep: 1,
                limit: 0,
            },
        },
    }
}

/// The key specs of a command, ended by the all-zero entry.
fn key_specs(doc: &Spec) -> Vec<raw::RedisModuleCommandKeySpec> {
    let mut specs = Vec::new();
    if doc.key_flags != 0 {
        specs.push(key_spec(doc.key_flags, 1));
    }
    if doc.wraps {
        // The wrapped command's keys, from position 4 on: which ones only
        // the command knows (it answers Redis's keys position request).
        let wrapped = raw::REDISMODULE_CMD_KEY_RW
            | raw::REDISMODULE_CMD_KEY_ACCESS
            | raw::REDISMODULE_CMD_KEY_INCOMPLETE;
        specs.push(key_spec(wrapped, 4));
    }
    specs.push(key_spec(0, 0));
    specs
}

/// Sets arity, key specs and docs of every command in `specs` (registered
/// just before). Returns the name of the first command Redis refused, if any.
pub fn register(ctx: *mut raw::RedisModuleCtx, specs: &[&Spec]) -> Result<(), &'static CStr> {
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    for doc in specs {
        let mut specs = key_specs(doc);
        let mut args: Vec<raw::RedisModuleCommandArg> = doc.args.iter().map(arg_struct).collect();
        args.push(end_of_args());
        let info = raw::RedisModuleCommandInfo {
            version: &version,
            summary: doc.summary.as_ptr(),
            complexity: c"O(1)".as_ptr(),
            since: c"0.1.0".as_ptr(),
            history: null_mut(),
            tips: null(),
            arity: doc.arity,
            key_specs: specs.as_mut_ptr(),
            args: args.as_mut_ptr(),
        };
        if !crate::ffi::set_command_info(ctx, doc.name, &info, doc.acl) {
            return Err(doc.name);
        }
    }
    Ok(())
}
