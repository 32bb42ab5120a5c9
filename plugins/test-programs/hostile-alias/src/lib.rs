//! `test-hostile-alias`: a mapper that tries to make the host allocate far
//! more than its `max_output_mb` grant, for the host's output-size tests.
//! Not a user plugin. Written against `wit/ferry.wit` with wit-bindgen
//! alone, as a hostile plugin would be.
//!
//! | config | what it does when a record of the batch has one of these keys |
//! |---|---|
//! | `alias_keys` | answers with the batch plus `columns` (default 60) `bytes` columns whose `data` lists all point at one leaked buffer of `alias_bytes` (default 16 MiB): little plugin memory, but `columns` x `alias_bytes` of host memory once copied out |
//! | `log_keys` | calls `host.log` with a message of `log_bytes` (default 8 MiB), then passes the batch on |
//!
//! Any other batch is passed on unchanged.
//!
//! The aliasing lists are built with `Vec::from_raw_parts` over the same
//! allocation (which is why this crate allows `unsafe`). wit-bindgen lowers
//! each list by handing over its pointer and length, and frees each in the
//! post-return function: the host must refuse the answer before then, or
//! the plugin frees one allocation `columns` times.

#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "mapper-plugin",
    });
}

use bindings::exports::ferry::plugin::mapper::{Guest, Mapped};
use bindings::ferry::plugin::host::{self, Level};
use bindings::ferry::plugin::types::{Batch, Column, PluginError, Texts, Values};

/// The plugin's `config` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    alias_keys: Vec<String>,
    #[serde(default)]
    columns: Option<usize>,
    #[serde(default)]
    alias_bytes: Option<usize>,
    #[serde(default)]
    log_keys: Vec<String>,
    #[serde(default)]
    log_bytes: Option<usize>,
}

thread_local! {
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
    /// The leaked buffer every aliasing list points at (pointer, length).
    static BUFFER: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// The keys of a batch.
fn keys(batch: &Batch) -> Vec<&str> {
    let Texts { offsets, data } = &batch.keys;
    offsets
        .windows(2)
        .map(|w| std::str::from_utf8(&data[w[0] as usize..w[1] as usize]).unwrap_or(""))
        .collect()
}

/// The one buffer, allocated (and leaked) on first use.
fn buffer(len: usize) -> (*mut u8, usize) {
    let (ptr, len) = BUFFER.with(|b| match b.get() {
        Some(known) => known,
        None => {
            let leaked: &'static mut [u8] = Box::leak(vec![b'a'; len].into_boxed_slice());
            let known = (leaked.as_mut_ptr() as usize, leaked.len());
            b.set(Some(known));
            known
        }
    });
    (ptr as *mut u8, len)
}

/// `columns` columns of `bytes` over the same buffer; row `row` holds the
/// whole buffer, the others are empty.
fn aliased_columns(rows: usize, row: usize, columns: usize, bytes: usize) -> Vec<Column> {
    let (ptr, len) = buffer(bytes);
    let offsets: Vec<u32> = (0..=rows)
        .map(|i| if i <= row { 0 } else { len as u32 })
        .collect();
    (0..columns)
        .map(|c| {
            // SAFETY (of a deliberately hostile kind): every one of these
            // vectors claims the same leaked allocation, whose layout
            // (`len` bytes, align 1) they match. They are never dropped
            // here: lowering the answer hands each pointer to the host and
            // forgets the vector.
            let data = unsafe { Vec::from_raw_parts(ptr, len, len) };
            Column {
                name: format!("alias{c}"),
                values: Values::Bytes(Texts {
                    offsets: offsets.clone(),
                    data,
                }),
                valid: None,
            }
        })
        .collect()
}

struct HostileAlias;

impl Guest for HostileAlias {
    fn open(config: String) -> Result<(), PluginError> {
        let parsed: Config = serde_json::from_str(&config)
            .map_err(|e| PluginError::InvalidConfig(format!("config: {e}")))?;
        CONFIG.with(|c| *c.borrow_mut() = parsed);
        Ok(())
    }

    fn map(records: Batch) -> Result<Mapped, PluginError> {
        let rows = records.ops.len();
        let (alias_row, logs) = CONFIG.with(|c| {
            let c = c.borrow();
            let keys = keys(&records);
            let alias_row = keys
                .iter()
                .position(|k| c.alias_keys.iter().any(|a| a == k));
            let logs = keys.iter().any(|k| c.log_keys.iter().any(|l| l == k));
            let alias = alias_row.map(|row| {
                (
                    row,
                    c.columns.unwrap_or(60),
                    c.alias_bytes.unwrap_or(16 << 20),
                )
            });
            (alias, logs.then(|| c.log_bytes.unwrap_or(8 << 20)))
        });
        if let Some(bytes) = logs {
            host::log(Level::Info, &"x".repeat(bytes));
        }
        let mut records = records;
        if let Some((row, columns, bytes)) = alias_row {
            records
                .columns
                .extend(aliased_columns(rows, row, columns, bytes));
        }
        Ok(Mapped {
            records,
            derived_from: (0..rows as u32).collect(),
            rejected: Vec::new(),
        })
    }
}

bindings::export!(HostileAlias with_types_in bindings);
