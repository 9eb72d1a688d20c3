//! DUMP payloads of lock records, forged: any field at any value, for the
//! tests of what RESTORE accepts. The layout is Redis's (RDB_TYPE_MODULE_2,
//! the module id, opcode-tagged strings, EOF, the RDB version, CRC64) around
//! hblock's record encoding 5 (one string: varint numbers, the owner's
//! length and the owner, the history's length and the history, then the
//! holders of a lock with permits, none here).

/// A record's fields, in the order of HBLOCK.APPLY's arguments.
#[derive(Clone, Debug)]
pub struct Record {
    pub phase: u64,
    pub owner: Vec<u8>,
    pub token: u64,
    pub interval: u64,
    pub misses: u64,
    pub beats: u64,
    pub granted: i64,
    pub last_beat: i64,
    pub takeovers: u64,
}

impl Record {
    /// A held lease of `owner` with `token`, granted `now_ms` for 10 minutes.
    pub fn held(owner: &[u8], token: u64, now_ms: i64) -> Record {
        Record {
            phase: 1,
            owner: owner.to_vec(),
            token,
            interval: 600_000,
            misses: 3,
            beats: 0,
            granted: now_ms,
            last_beat: now_ms,
            takeovers: 0,
        }
    }
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn rdb_len(len: usize, out: &mut Vec<u8>) {
    if len < 64 {
        out.push(len as u8);
    } else if len < 16384 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn rdb_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(5); // RDB_MODULE_OPCODE_STRING
    rdb_len(bytes.len(), out);
    out.extend_from_slice(bytes);
}

/// Redis's CRC64 (Jones polynomial, reflected, as in its crc64.c).
pub fn crc64(data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut crc = 0u64;
    for &byte in data {
        crc ^= u64::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A payload for RESTORE holding `record`, with the module id and RDB
/// version of `template` (a real DUMP of a lock from the same server).
pub fn forge(template: &[u8], record: &Record) -> Vec<u8> {
    forge_with_history(template, record, &[])
}

/// [`forge`] with `history` (hblock's encoded holder history) after the
/// owner, as encoding 5 keeps it (`template` must be a DUMP of this
/// build, encoding 5).
pub fn forge_with_history(template: &[u8], record: &Record, history: &[u8]) -> Vec<u8> {
    forge_full(template, record, history, &[])
}

/// One holder of a lock with permits, as encoding 5 keeps it.
#[derive(Clone, Debug)]
pub struct Holder {
    pub owner: Vec<u8>,
    pub token: u64,
    pub interval: u64,
    pub misses: u64,
    pub beats: u64,
    pub granted: i64,
    pub last_beat: i64,
}

/// A payload for RESTORE of a lock with `limit` permits held by `holders`
/// (`record`: the lock's own fields, not held; its token the last issued).
pub fn forge_permits(template: &[u8], record: &Record, limit: u64, holders: &[Holder]) -> Vec<u8> {
    let mut permits = Vec::new();
    varint(limit, &mut permits);
    varint(holders.len() as u64, &mut permits);
    for h in holders {
        for n in [h.token, h.interval, h.misses, h.beats] {
            varint(n, &mut permits);
        }
        varint(zigzag(h.granted), &mut permits);
        varint(zigzag(h.last_beat.wrapping_sub(h.granted)), &mut permits);
        varint(h.owner.len() as u64, &mut permits);
        permits.extend_from_slice(&h.owner);
    }
    forge_full(template, record, &[], &permits)
}

fn forge_full(template: &[u8], record: &Record, history: &[u8], permits: &[u8]) -> Vec<u8> {
    assert!(template.len() > 20 && template[0] == 7, "a DUMP of a lock");
    let mut numbers = Vec::new();
    for n in [
        record.phase,
        record.token,
        record.interval,
        record.misses,
        record.beats,
    ] {
        varint(n, &mut numbers);
    }
    varint(zigzag(record.granted), &mut numbers);
    varint(
        zigzag(record.last_beat.wrapping_sub(record.granted)),
        &mut numbers,
    );
    varint(record.takeovers, &mut numbers);
    varint(record.owner.len() as u64, &mut numbers);
    numbers.extend_from_slice(&record.owner);
    varint(history.len() as u64, &mut numbers);
    numbers.extend_from_slice(history);
    numbers.extend_from_slice(permits);
    let mut out = template[..10].to_vec(); // type byte, module id (64-bit length)
    rdb_string(&numbers, &mut out);
    out.push(0); // RDB_MODULE_OPCODE_EOF
    out.extend_from_slice(&template[template.len() - 10..template.len() - 8]);
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc64_matches_redis() {
        // The check value of crc64.c's own test.
        assert_eq!(super::crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }
}
