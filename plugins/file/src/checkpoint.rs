//! The source's position, and its encoding as checkpoint bytes.
//!
//! Layout (25 bytes, little-endian): version `1` (u8), file index (u32),
//! FNV-1a hash of the file's path (u32; 0 past the last file), byte offset
//! (u64), lines consumed (u64).

/// Where the source stands: the next record starts at `offset` of file
/// `file`, after `line` line feeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Index into the configured paths.
    pub file: usize,
    /// Bytes of that file already consumed.
    pub offset: u64,
    /// Line feeds consumed so far (the next record starts on line `line + 1`).
    pub line: u64,
}

const VERSION: u8 = 1;
const LEN: usize = 25;

/// FNV-1a, 32 bits: enough to notice that a checkpoint belongs to another
/// file.
pub fn path_hash(path: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in path.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// Encodes `pos`; `path` is the file at `pos.file`, if any.
pub fn encode(pos: Position, path: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN);
    out.push(VERSION);
    out.extend_from_slice(&u32::try_from(pos.file).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&path.map_or(0, path_hash).to_le_bytes());
    out.extend_from_slice(&pos.offset.to_le_bytes());
    out.extend_from_slice(&pos.line.to_le_bytes());
    out
}

/// Decodes checkpoint bytes for the configured `paths`.
pub fn decode(bytes: &[u8], paths: &[String]) -> Result<Position, String> {
    if bytes.len() != LEN || bytes.first() != Some(&VERSION) {
        return Err(format!(
            "the checkpoint ({} bytes) was not made by this version of the file source",
            bytes.len()
        ));
    }
    let u32_at = |at: usize| -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(bytes.get(at..at + 4).unwrap_or(&[0; 4]));
        u32::from_le_bytes(b)
    };
    let u64_at = |at: usize| -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes.get(at..at + 8).unwrap_or(&[0; 8]));
        u64::from_le_bytes(b)
    };
    let file = u32_at(1) as usize;
    let hash = u32_at(5);
    let pos = Position {
        file,
        offset: u64_at(9),
        line: u64_at(17),
    };
    if file > paths.len() {
        return Err(format!(
            "the checkpoint points at file {} but only {} are configured",
            file + 1,
            paths.len()
        ));
    }
    if let Some(path) = paths.get(file)
        && hash != 0
        && hash != path_hash(path)
    {
        return Err(format!(
            "the checkpoint was made for another file list: file {} is now {path:?}",
            file + 1
        ));
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let paths = vec!["/in/a.csv".to_owned(), "/in/b.csv".to_owned()];
        let pos = Position {
            file: 1,
            offset: 1234,
            line: 56,
        };
        let bytes = encode(pos, Some("/in/b.csv"));
        assert_eq!(decode(&bytes, &paths), Ok(pos));
        let done = Position {
            file: 2,
            offset: 0,
            line: 0,
        };
        assert_eq!(decode(&encode(done, None), &paths), Ok(done));
    }

    #[test]
    fn refuses_foreign_checkpoints() {
        let paths = vec!["/in/a.csv".to_owned()];
        assert!(decode(b"garbage", &paths).is_err());
        let other = encode(Position::default(), Some("/in/z.csv"));
        assert!(
            decode(&other, &paths)
                .unwrap_err()
                .contains("another file list")
        );
        let far = encode(
            Position {
                file: 5,
                ..Position::default()
            },
            None,
        );
        assert!(decode(&far, &paths).is_err());
    }
}
