//! `ferry-fuzz`: the body of each of the runtime's fuzz targets, as a plain
//! function over bytes.
//!
//! Two callers share these functions: the cargo-fuzz crate in
//! `fuzz/targets` (built with nightly and libFuzzer by `scripts/fuzz.sh`)
//! and this crate's `tests/corpus.rs`, which feeds every file of
//! `fuzz/corpus/<target>/` to the same function on stable, so an input that
//! once crashed a target fails the ordinary test run. A body returns
//! normally for every input; a broken promise (a panic in the code under
//! test, or one of the assertions below) is a crash.

use std::path::Path;

use ferry_batch::{Batch, BatchExt, Column, Op, Texts, Values, check_rows, json_fault};

/// The fuzz targets, by name: the name is the cargo-fuzz binary and the
/// corpus folder `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Body)] = &[("manifest", manifest), ("batch", batch)];

/// A target's body: it returns normally for every input.
pub type Body = fn(&[u8]);

/// The manifest parser: any text is a [`ferry_manifest::Manifest`] or an
/// error whose every diagnostic points into the text, at the line and
/// column of its span's start (what an operator is shown). Bytes that are
/// not UTF-8 never reach the parser (`ferry_manifest::load` refuses them
/// when reading the file).
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let error = match ferry_manifest::parse(text, Path::new("fuzz/pipeline.toml")) {
        Ok(_) => return,
        Err(error) => error,
    };
    let diagnostics = error.diagnostics();
    assert!(
        !diagnostics.is_empty(),
        "an invalid manifest without a diagnostic: {error}"
    );
    for d in diagnostics {
        assert!(
            d.span.start <= d.span.end && d.span.end <= text.len(),
            "span {:?} outside the text ({} bytes): {}",
            d.span,
            text.len(),
            d.message
        );
        let before = text.get(..d.span.start);
        assert!(
            before.is_some() && text.get(d.span.start..d.span.end).is_some(),
            "span {:?} splits a character: {}",
            d.span,
            d.message
        );
        let before = before.unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        let line = before.matches('\n').count() + 1;
        let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        assert_eq!(
            (d.line, d.column),
            (line, column),
            "line and column of span {:?}: {}",
            d.span,
            d.message
        );
        assert!(!d.message.is_empty(), "a diagnostic without a message");
    }
    // Rendering (what `ferry check` prints) must not fail either.
    let rendered = error.to_string();
    assert!(rendered.contains("error"), "{rendered}");
}

/// The host's checks of a plugin's answer: an arbitrary batch (decoded from
/// the bytes by `decode_batch`, lists of any length, offsets anywhere,
/// any bytes as text and JSON) is accepted or refused, never a panic nor an
/// allocation out of proportion to its size. The checks agree with each
/// other (`check` passes exactly when `check_shape` passes and
/// `value_faults` finds nothing), and what the pipeline then does with the
/// batch works: rows named by a mapper or sink (`check_rows`), `take` (a
/// selection of a valid batch is valid), keys and `row_json` (dead
/// letters). A document `json_fault` accepts is one serde_json parses back
/// (numbers past f64's range excepted).
pub fn batch(data: &[u8]) {
    let mut input = Input(data);
    let batch = decode_batch(&mut input);
    let rows: Vec<u32> = (0..input.byte() % 8)
        .map(|_| u32::from(input.byte() % 10))
        .collect();
    let shape = batch.check_shape();
    let full = batch.check();
    let n = batch.len();
    if shape.is_ok() {
        let faults = batch.value_faults();
        assert!(faults.iter().all(|(row, _)| *row < n), "{faults:?}");
        assert_eq!(full.is_ok(), faults.is_empty(), "{full:?} / {faults:?}");
        if check_rows("derived-from", rows.iter().copied(), n).is_ok() {
            let taken = batch.take(&rows);
            assert_eq!(taken.len(), rows.len());
            let kept = taken.check_shape();
            assert!(kept.is_ok(), "a selection of a readable batch: {kept:?}");
            if full.is_ok() {
                let kept = taken.check();
                assert!(kept.is_ok(), "a selection of a valid batch: {kept:?}");
            }
        } else {
            assert!(rows.iter().any(|&r| r as usize >= n));
        }
    } else {
        assert!(full.is_err(), "check passed where check_shape failed");
        // Reads of a batch that failed its check give empty values, never
        // a panic (the pipeline does not read one, but nothing may break).
        let _ = batch.take(&rows);
    }
    for i in 0..n.min(16) {
        let _ = batch.key(i);
        let _ = batch.row_json(i);
    }
    let document = input.rest();
    if json_fault(document).is_none()
        && let Err(e) = serde_json::from_slice::<serde_json::Value>(document)
    {
        // A number past f64's range (`1e400`) is JSON that serde_json's
        // tree cannot hold (a dead letter keeps the document as text).
        assert!(
            e.to_string().starts_with("number out of range"),
            "json_fault accepted what serde_json refuses: {e}"
        );
    }
}

/// A cursor over the fuzzer's bytes; past the end every read is zero.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.0.len())
    }

    /// A list length: mostly the batch's record count, sometimes another.
    fn len(&mut self, records: usize) -> usize {
        match self.byte() {
            b @ 0..=31 => usize::from(b % 12),
            _ => records,
        }
    }
}

/// A batch as a plugin could return it, from the fuzzer's bytes: lengths
/// mostly consistent (so the value checks are reached) but not always,
/// offsets either a split of the data or any numbers.
fn decode_batch(input: &mut Input<'_>) -> Batch {
    let n = usize::from(input.byte() % 9);
    let flags = input.byte();
    let keys = decode_texts(input, n);
    let ops = (0..input.len(n))
        .map(|_| {
            if input.byte() & 1 == 0 {
                Op::Upsert
            } else {
                Op::Delete
            }
        })
        .collect();
    let versions = (flags & 1 != 0).then(|| (0..input.len(n)).map(|_| input.u64()).collect());
    let updated_at = (flags & 2 != 0).then(|| {
        (0..input.len(n))
            .map(|_| input.u64().cast_signed())
            .collect()
    });
    let origins = (flags & 4 != 0).then(|| decode_texts(input, n));
    let columns = (0..input.byte() % 5)
        .map(|_| decode_column(input, n))
        .collect();
    Batch {
        keys,
        ops,
        versions,
        updated_at,
        origins,
        columns,
    }
}

fn decode_texts(input: &mut Input<'_>, records: usize) -> Texts {
    let count = input.len(records);
    let mode = input.byte();
    let data_len = usize::from(input.byte() % 64);
    let data = input.take(data_len).to_vec();
    let offsets = if mode & 0x0f != 0 {
        // A split of the data: mostly well formed.
        let mut offsets = vec![0u32];
        let mut at = 0usize;
        for i in 0..count {
            at = if i + 1 == count {
                data.len()
            } else {
                (at + usize::from(input.byte() % 16)).min(data.len())
            };
            offsets.push(at as u32);
        }
        offsets
    } else {
        (0..=count).map(|_| input.u32() % 80).collect()
    };
    Texts { offsets, data }
}

fn decode_column(input: &mut Input<'_>, records: usize) -> Column {
    let name = match input.byte() % 6 {
        0 => "a".to_string(),
        1 => "b".to_string(),
        2 => "doc".to_string(),
        n => {
            let len = usize::from(n);
            String::from_utf8_lossy(input.take(len)).into_owned()
        }
    };
    let values = match input.byte() % 7 {
        0 => Values::Ints(
            (0..input.len(records))
                .map(|_| input.u64().cast_signed())
                .collect(),
        ),
        1 => Values::Floats(
            (0..input.len(records))
                .map(|_| f64::from_bits(input.u64()))
                .collect(),
        ),
        2 => Values::Bools(
            (0..input.len(records))
                .map(|_| input.byte() & 1 == 1)
                .collect(),
        ),
        3 => Values::Text(decode_texts(input, records)),
        4 => Values::Bytes(decode_texts(input, records)),
        5 => Values::Timestamps(
            (0..input.len(records))
                .map(|_| input.u64().cast_signed())
                .collect(),
        ),
        _ => Values::Json(decode_texts(input, records)),
    };
    let valid = (input.byte() & 1 == 1).then(|| {
        (0..input.len(records))
            .map(|_| input.byte() & 1 == 1)
            .collect()
    });
    Column {
        name,
        values,
        valid,
    }
}
