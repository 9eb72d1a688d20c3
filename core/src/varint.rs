//! LEB128 varints: 7 bits per byte, low bits first, the high bit set on every
//! byte but the last. Signed numbers go through zigzag first, so small
//! magnitudes of either sign stay short. Used by the packed lease checks and
//! the compact lock record.

/// The longest varint of a u64.
pub const MAX_LEN: usize = 10;

/// Writes `value` into `buf`; returns the bytes used.
pub fn encode(mut value: u64, buf: &mut [u8; MAX_LEN]) -> &[u8] {
    let mut len = 0;
    for slot in buf.iter_mut() {
        len += 1;
        if value < 0x80 {
            *slot = value as u8;
            break;
        }
        *slot = (value as u8) | 0x80;
        value >>= 7;
    }
    buf.get(..len).unwrap_or_default()
}

/// Appends `value` to `out` (make room first with `reserve`: each byte is
/// then a plain push, where `encode` + `extend_from_slice` cost a copy call
/// per number).
#[inline]
pub fn push(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint at `*at` and moves `*at` past it; None when the bytes end
/// first or it does not fit a u64.
pub fn decode(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        value |= bits << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lengths() {
        for (value, len) in [(0u64, 1), (127, 1), (128, 2), (300, 2), (u64::MAX, 10)] {
            let mut buf = [0u8; MAX_LEN];
            let bytes = encode(value, &mut buf).to_vec();
            assert_eq!(bytes.len(), len, "{value}");
            let mut at = 0;
            assert_eq!(decode(&bytes, &mut at), Some(value));
            assert_eq!(at, len);
            let mut pushed = vec![9];
            push(&mut pushed, value);
            assert_eq!(pushed.get(1..), Some(&bytes[..]));
        }
    }

    #[test]
    fn back_to_back_numbers_at_any_offset() {
        let values = [
            0u64,
            1,
            127,
            128,
            1 << 35,
            u64::MAX,
            1 << 63,
            300,
            1_700_000_000_000,
        ];
        let mut bytes = vec![0xaa];
        let mut buf = [0u8; MAX_LEN];
        for value in values {
            bytes.extend_from_slice(encode(value, &mut buf));
        }
        let mut at = 1;
        for value in values {
            assert_eq!(decode(&bytes, &mut at), Some(value));
        }
        assert_eq!((at, decode(&bytes, &mut at)), (bytes.len(), None));
        let mut past = bytes.len() + 5;
        assert_eq!(decode(&bytes, &mut past), None);
    }

    #[test]
    fn zigzag_keeps_small_magnitudes_small() {
        for (value, code) in [(0i64, 0u64), (-1, 1), (1, 2), (i64::MAX, u64::MAX - 1)] {
            assert_eq!(zigzag(value), code);
            assert_eq!(unzigzag(code), value);
        }
        assert_eq!(unzigzag(zigzag(i64::MIN)), i64::MIN);
    }

    #[test]
    fn truncated_or_oversized_input_is_refused() {
        let mut at = 0;
        assert_eq!(decode(&[0x80, 0x80], &mut at), None);
        let mut at = 0;
        assert_eq!(decode(&[0xff; 11], &mut at), None);
        let mut at = 0;
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(decode(&too_big, &mut at), None);
    }
}
