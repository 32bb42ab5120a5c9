//! The binary pieces checkpoints are made of: integers, texts, SQL values,
//! key tuples, front-coded key sets, and the 64-bit hash the delta source's
//! skip set keeps.
//!
//! Checkpoints are the only state a source keeps across restarts, and a
//! full sync keeps every key in one, so the encoding is compact: LEB128
//! integers, key sets sorted and front-coded (each key stores only what
//! differs from the previous one), the skip set as cursor deltas plus
//! 8-byte hashes.

use std::collections::BTreeSet;

use ferry_plugin::sql::Value as SqlValue;

/// Appends checkpoint pieces to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// One byte.
    pub fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// An unsigned integer, LEB128.
    pub fn varint(&mut self, mut n: u64) {
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(low);
                return;
            }
            self.buf.push(low | 0x80);
        }
    }

    /// A signed integer, zigzag then LEB128.
    pub fn zigzag(&mut self, n: i64) {
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    /// Eight bytes, little-endian.
    pub fn u64_fixed(&mut self, n: u64) {
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    /// Bytes with their length first.
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// Text with its length first.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Bytes as they are.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// An SQL value: a tag, then its payload.
    pub fn value(&mut self, v: &SqlValue) {
        match v {
            SqlValue::Null => self.u8(0),
            SqlValue::Int(n) => {
                self.u8(1);
                self.zigzag(*n);
            }
            SqlValue::Float(x) => {
                self.u8(2);
                self.u64_fixed(x.to_bits());
            }
            SqlValue::Boolean(b) => {
                self.u8(3);
                self.u8(u8::from(*b));
            }
            SqlValue::Text(s) => {
                self.u8(4);
                self.str(s);
            }
            SqlValue::Bytes(b) => {
                self.u8(5);
                self.bytes(b);
            }
            SqlValue::Timestamp(t) => {
                self.u8(6);
                self.zigzag(*t);
            }
            SqlValue::Json(s) => {
                self.u8(7);
                self.str(s);
            }
        }
    }

    /// Several values, their count first.
    pub fn values(&mut self, vs: &[SqlValue]) {
        self.varint(vs.len() as u64);
        for v in vs {
            self.value(v);
        }
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads what a [`Writer`] wrote. Every method fails with a message rather
/// than panicking on truncated or foreign bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

const TRUNCATED: &str = "the checkpoint is truncated";

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    /// Whether everything was read.
    pub fn is_done(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// `n` bytes as they are.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or(TRUNCATED)?;
        let out = self.buf.get(self.at..end).ok_or(TRUNCATED)?;
        self.at = end;
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.raw(1)?.first().copied().unwrap_or(0))
    }

    /// An unsigned LEB128 integer.
    pub fn varint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err("the checkpoint holds an integer longer than 64 bits".into())
    }

    /// A length or count, checked against what is left to read.
    pub fn count(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        let left = self.buf.len().saturating_sub(self.at) as u64;
        if n > left.saturating_mul(8).saturating_add(8) {
            return Err(TRUNCATED.into());
        }
        usize::try_from(n).map_err(|_| TRUNCATED.into())
    }

    /// A zigzag integer.
    pub fn zigzag(&mut self) -> Result<i64, String> {
        let n = self.varint()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    /// Eight little-endian bytes.
    pub fn u64_fixed(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.raw(8)?);
        Ok(u64::from_le_bytes(b))
    }

    /// Bytes with their length first.
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.count()?;
        self.raw(n)
    }

    /// Text with its length first.
    pub fn str(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| "the checkpoint holds text that is not UTF-8".into())
    }

    /// An SQL value.
    pub fn value(&mut self) -> Result<SqlValue, String> {
        Ok(match self.u8()? {
            0 => SqlValue::Null,
            1 => SqlValue::Int(self.zigzag()?),
            2 => SqlValue::Float(f64::from_bits(self.u64_fixed()?)),
            3 => SqlValue::Boolean(self.u8()? != 0),
            4 => SqlValue::Text(self.str()?),
            5 => SqlValue::Bytes(self.bytes()?.to_vec()),
            6 => SqlValue::Timestamp(self.zigzag()?),
            7 => SqlValue::Json(self.str()?),
            t => return Err(format!("the checkpoint holds an unknown value tag {t}")),
        })
    }

    /// Several values, their count first.
    pub fn values(&mut self) -> Result<Vec<SqlValue>, String> {
        let n = self.count()?;
        (0..n).map(|_| self.value()).collect()
    }
}

/// The bytes of a key tuple, as key sets store it.
pub fn encode_key(values: &[SqlValue]) -> Vec<u8> {
    let mut w = Writer::new();
    for v in values {
        w.value(v);
    }
    w.finish()
}

/// A key tuple back from [`encode_key`]'s bytes.
pub fn decode_key(bytes: &[u8]) -> Result<Vec<SqlValue>, String> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while !r.is_done() {
        out.push(r.value()?);
    }
    Ok(out)
}

/// Writes a set of encoded keys, front-coded: the count, then per key the
/// length shared with the previous key and the rest.
pub fn write_key_set(w: &mut Writer, set: &BTreeSet<Vec<u8>>) {
    w.varint(set.len() as u64);
    let mut prev: &[u8] = &[];
    for key in set {
        let shared = prev
            .iter()
            .zip(key.iter())
            .take_while(|(a, b)| a == b)
            .count();
        w.varint(shared as u64);
        w.bytes(key.get(shared..).unwrap_or(&[]));
        prev = key;
    }
}

/// Reads a set written by [`write_key_set`].
pub fn read_key_set(r: &mut Reader<'_>) -> Result<BTreeSet<Vec<u8>>, String> {
    let n = r.count()?;
    let mut set = BTreeSet::new();
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..n {
        let shared = r.count()?;
        let rest = r.bytes()?;
        let mut key = prev.get(..shared).ok_or(TRUNCATED)?.to_vec();
        key.extend_from_slice(rest);
        set.insert(key.clone());
        prev = key;
    }
    Ok(set)
}

/// Writes a skip set of `(cursor, hash)` pairs, sorted: cursor deltas and
/// 8-byte hashes.
pub fn write_seen(w: &mut Writer, seen: &BTreeSet<(i64, u64)>) {
    w.varint(seen.len() as u64);
    let mut prev = 0i64;
    for &(cursor, hash) in seen {
        w.zigzag(cursor.wrapping_sub(prev));
        w.u64_fixed(hash);
        prev = cursor;
    }
}

/// Reads a set written by [`write_seen`].
pub fn read_seen(r: &mut Reader<'_>) -> Result<BTreeSet<(i64, u64)>, String> {
    let n = r.count()?;
    let mut seen = BTreeSet::new();
    let mut prev = 0i64;
    for _ in 0..n {
        let cursor = prev.wrapping_add(r.zigzag()?);
        seen.insert((cursor, r.u64_fixed()?));
        prev = cursor;
    }
    Ok(seen)
}

/// A 64-bit hash (FNV-1a, then a 64-bit finalizer so that nearby inputs
/// spread). Stable across builds: checkpoints keep these.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let vs = vec![
            SqlValue::Null,
            SqlValue::Int(-5),
            SqlValue::Int(i64::MAX),
            SqlValue::Int(i64::MIN),
            SqlValue::Float(1.5),
            SqlValue::Boolean(true),
            SqlValue::Text("héllo".into()),
            SqlValue::Bytes(vec![0, 255]),
            SqlValue::Timestamp(-1),
            SqlValue::Json("{\"a\":1}".into()),
        ];
        let mut w = Writer::new();
        w.values(&vs);
        w.varint(300);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.values().unwrap(), vs);
        assert_eq!(r.varint().unwrap(), 300);
        assert!(r.is_done());
        assert_eq!(decode_key(&encode_key(&vs)).unwrap(), vs);
    }

    #[test]
    fn truncated_or_foreign_bytes_fail_cleanly() {
        let mut w = Writer::new();
        w.values(&[SqlValue::Text("abcdef".into())]);
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            assert!(Reader::new(&bytes[..cut]).values().is_err(), "cut at {cut}");
        }
        assert!(Reader::new(&[1, 9]).values().is_err());
        assert!(Reader::new(&[0xff; 20]).varint().is_err());
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0x0f]).values().is_err());
    }

    #[test]
    fn key_sets_are_front_coded() {
        let set: BTreeSet<Vec<u8>> = (0..1000i64)
            .map(|i| encode_key(&[SqlValue::Text(format!("customer-{i:06}"))]))
            .collect();
        let mut w = Writer::new();
        write_key_set(&mut w, &set);
        let bytes = w.finish();
        // 17 bytes per key unencoded; front coding keeps about 5.
        assert!(bytes.len() < 6 * 1000, "{}", bytes.len());
        assert_eq!(read_key_set(&mut Reader::new(&bytes)).unwrap(), set);
    }

    #[test]
    fn seen_sets_round_trip() {
        let seen: BTreeSet<(i64, u64)> =
            [(-3, 9), (10, 1), (10, u64::MAX), (1_700_000_000_000_000, 4)]
                .into_iter()
                .collect();
        let mut w = Writer::new();
        write_seen(&mut w, &seen);
        let bytes = w.finish();
        assert_eq!(read_seen(&mut Reader::new(&bytes)).unwrap(), seen);
    }

    #[test]
    fn hash_is_stable() {
        assert_ne!(hash64(b"a"), hash64(b"b"));
        // Pinned: checkpoints keep these values, so they must not change.
        assert_eq!(hash64(b"key-1"), 11_530_025_708_809_839_852);
    }
}
