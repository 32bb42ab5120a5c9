//! `ferry_postgres_cdc`: change data capture from PostgreSQL, as a ferry
//! [`Source`](ferry_plugin::Source) ([`Cdc`]) that the `postgres` connector
//! serves for `mode = "cdc"`.
//!
//! The host gives plugins SQL only (the `sql` interface), not the
//! replication protocol, so the source uses logical decoding through SQL
//! functions with PostgreSQL's built-in `pgoutput` plugin (nothing to
//! install on the server):
//!
//! - `poll` reads changes with `pg_logical_slot_peek_binary_changes`,
//!   which does not consume them, parses pgoutput's binary messages
//!   ([`pgoutput`]) and turns them into records ([`stream`]): inserts and
//!   updates as upserts with every column typed ([`values`]), deletes as
//!   deletes with the key columns, each with the commit LSN as its version
//!   and the commit time as its updated-at;
//! - the checkpoint is the WAL position reached ([`checkpoint`]): the end
//!   of the last transaction emitted, and how far into a transaction too
//!   large for one batch;
//! - `commit`, which the host calls only once a checkpoint is durable,
//!   advances the slot with `pg_replication_slot_advance`. The slot never
//!   passes what the pipeline stored, so after a crash the source resumes
//!   from its own checkpoint and nothing is skipped;
//! - with `snapshot = true`, the tables' existing rows are copied first, in
//!   one `REPEATABLE READ` transaction opened after the slot, and streamed
//!   transactions the copy's snapshot already saw are skipped
//!   ([`visibility`]).
//!
//! The crate's `README.md` holds the configuration reference, the record
//! format, the reasoning behind the copy and the restart rules, and the
//! measured throughput.

pub mod checkpoint;
pub mod pgoutput;
mod source;
pub mod stream;
pub mod values;
pub mod visibility;

pub use source::{Cdc, CdcConfig, CdcMode, quote_ident};

/// The body of the fuzz target `pgoutput` (`plugins/fuzz`, run by
/// `scripts/fuzz.sh`), shared with the corpus replay test
/// (`tests/fuzz_corpus.rs`).
#[doc(hidden)]
pub mod fuzz {
    use std::collections::HashMap;

    use crate::stream::{Fill, Messages, Out, Position, Stream, TableSpec};

    /// The bytes are a peek's answer (length-prefixed pgoutput messages,
    /// as the source reads them): they are split, decoded and turned into
    /// records for two configured tables (`public.orders` keyed by `id`,
    /// `shop.items` by `order_id, line`) as the source does, until the
    /// stream is drained or refuses them. Never a panic; every message is
    /// also decoded on its own, and the whole input as one message.
    pub fn pgoutput(data: &[u8]) {
        let _ = crate::pgoutput::parse(data);
        let Ok(messages) = Messages::parse(data.to_vec()) else {
            return;
        };
        let spec = |schema: &str, name: &str, key: &[&str]| TableSpec {
            schema: schema.into(),
            name: name.into(),
            qualified: format!("{schema}.{name}"),
            key: key.iter().map(|k| k.to_string()).collect(),
        };
        let mut stream = Stream::new(
            vec![
                spec("public", "orders", &["id"]),
                spec("shop", "items", &["order_id", "line"]),
            ],
            HashMap::from([(70_000, 20)]),
            Some("table".into()),
            Position::default(),
            None,
        );
        stream.push_messages(messages);
        // A batch of 3 records, so transactions are cut and resumed too.
        for _ in 0..256 {
            let mut out = Out::new(3);
            match stream.fill(&mut out) {
                Ok(Fill::Full) => {
                    let _ = out.b.finish();
                }
                Ok(Fill::Drained) | Err(_) => break,
            }
        }
    }
}
