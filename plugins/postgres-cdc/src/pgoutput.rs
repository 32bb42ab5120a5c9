//! A reader for the messages of PostgreSQL's built-in `pgoutput` logical
//! decoding plugin, protocol version 1 (the "Logical Replication Message
//! Formats" chapter of the PostgreSQL manual).
//!
//! Each row of `pg_logical_slot_peek_binary_changes(..., 'proto_version',
//! '1', ...)` holds one message: a type byte, then big-endian integers,
//! NUL-terminated strings and tuple data. Protocol 1 has no streaming of
//! transactions in progress, so a transaction always arrives whole, from
//! its `Begin` to its `Commit`, in commit order.
//!
//! Parsing borrows from the row: names and column values are slices of it.
//! Text is in the database's encoding; the source requires UTF-8 and
//! checks each value when it converts it.

use std::fmt;

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable pgoutput message: {}", self.0)
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    /// The start of a transaction.
    Begin(Begin),
    /// The end of a transaction.
    Commit(Commit),
    /// The transaction was replayed from another system (its replication
    /// origin).
    Origin {
        /// The commit LSN on the origin server.
        lsn: u64,
        /// The origin's name.
        name: &'a str,
    },
    /// A table's layout; sent before the first change of the table in each
    /// decoding session, and again after it changes.
    Relation(Relation<'a>),
    /// A non-built-in data type used by a relation.
    Type {
        /// The type's OID.
        oid: u32,
        /// Its schema (empty for `pg_catalog`).
        namespace: &'a str,
        /// Its name.
        name: &'a str,
    },
    /// A new row.
    Insert {
        /// The relation's OID.
        relation: u32,
        /// The row.
        new: Tuple<'a>,
    },
    /// A changed row.
    Update {
        /// The relation's OID.
        relation: u32,
        /// The old key (`K`, when the replica identity changed) or the whole
        /// old row (`O`, with `REPLICA IDENTITY FULL`), when sent.
        old: Option<(Old, Tuple<'a>)>,
        /// The new row; unchanged TOAST values are [`Datum::Unchanged`].
        new: Tuple<'a>,
    },
    /// A removed row: its replica identity (`K`) or the whole row (`O`).
    Delete {
        /// The relation's OID.
        relation: u32,
        /// Which old tuple this is.
        kind: Old,
        /// The old tuple.
        old: Tuple<'a>,
    },
    /// `TRUNCATE` of one or more relations.
    Truncate {
        /// Bit 1: `CASCADE`; bit 2: `RESTART IDENTITY`.
        options: u8,
        /// The relations' OIDs.
        relations: Vec<u32>,
    },
    /// A `pg_logical_emit_message` message (only sent when asked for).
    Message {
        /// Whether it was emitted in a transaction.
        transactional: bool,
        /// Its LSN.
        lsn: u64,
        /// Its prefix.
        prefix: &'a str,
        /// Its content.
        content: &'a [u8],
    },
}

/// The `Begin` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// The LSN of the transaction's commit record.
    pub final_lsn: u64,
    /// The commit time, in microseconds since 2000-01-01 (PostgreSQL's epoch).
    pub commit_time: i64,
    /// The transaction id (32 bits, without its epoch).
    pub xid: u32,
}

/// The `Commit` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Unused flags.
    pub flags: u8,
    /// The LSN of the commit record (the `Begin`'s `final_lsn`).
    pub commit_lsn: u64,
    /// The LSN just past the commit record: where decoding resumes.
    pub end_lsn: u64,
    /// The commit time, in microseconds since 2000-01-01.
    pub commit_time: i64,
}

/// The `Relation` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation<'a> {
    /// The relation's OID.
    pub oid: u32,
    /// Its schema (empty for `pg_catalog`).
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// `REPLICA IDENTITY`: `d` default (primary key), `n` nothing, `f` full,
    /// `i` an index.
    pub replica_identity: u8,
    /// The columns, in tuple order.
    pub columns: Vec<RelationColumn<'a>>,
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Bit 1: the column is part of the replica identity key.
    pub flags: u8,
    /// Its name.
    pub name: &'a str,
    /// Its data type's OID.
    pub type_oid: u32,
    /// Its type modifier.
    pub type_modifier: i32,
}

/// Which old tuple an update or delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Old {
    /// `K`: only the replica identity columns hold values.
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// A row's column values, in the relation's column order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuple<'a> {
    /// One value per column.
    pub values: Vec<Datum<'a>>,
}

/// One column value of a [`Tuple`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum<'a> {
    /// `n`: NULL.
    Null,
    /// `u`: an unchanged TOASTed value, not sent.
    Unchanged,
    /// `t`: the value's text form.
    Text(&'a [u8]),
    /// `b`: the value's binary form (only with the `binary` option).
    Binary(&'a [u8]),
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ParseError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end.and_then(|e| self.bytes.get(self.at..e)) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(ParseError(format!(
                "{what} cut short at byte {} of {}",
                self.at,
                self.bytes.len()
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn i16(&mut self, what: &str) -> Result<i16, ParseError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, ParseError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64, ParseError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// A NUL-terminated string.
    fn string(&mut self, what: &str) -> Result<&'a str, ParseError> {
        let rest = self.bytes.get(self.at..).unwrap_or(&[]);
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(ParseError(format!("{what} has no terminating NUL")));
        };
        let raw = self.take(len, what)?;
        self.at += 1;
        std::str::from_utf8(raw).map_err(|_| ParseError(format!("{what} is not UTF-8")))
    }

    fn tuple(&mut self) -> Result<Tuple<'a>, ParseError> {
        let n = self.i16("the tuple's column count")?;
        let n = usize::try_from(n).map_err(|_| ParseError(format!("{n} columns")))?;
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            let kind = self.u8("a column's kind")?;
            values.push(match kind {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' | b'b' => {
                    let len = self.i32("a value's length")?;
                    let len = usize::try_from(len)
                        .map_err(|_| ParseError(format!("column {i} has length {len}")))?;
                    let data = self.take(len, "a column value")?;
                    if kind == b't' {
                        Datum::Text(data)
                    } else {
                        Datum::Binary(data)
                    }
                }
                other => {
                    return Err(ParseError(format!(
                        "column {i} has kind {:?}, expected 'n', 'u', 't' or 'b'",
                        char::from(other)
                    )));
                }
            });
        }
        Ok(Tuple { values })
    }

    fn old(&mut self, marker: u8) -> Result<Old, ParseError> {
        match marker {
            b'K' => Ok(Old::Key),
            b'O' => Ok(Old::Full),
            other => Err(ParseError(format!(
                "expected 'K' or 'O' before an old tuple, found {:?}",
                char::from(other)
            ))),
        }
    }

    fn new_marker(&mut self) -> Result<(), ParseError> {
        match self.u8("the new tuple marker")? {
            b'N' => Ok(()),
            other => Err(ParseError(format!(
                "expected 'N' before a new tuple, found {:?}",
                char::from(other)
            ))),
        }
    }

    fn done(&self, what: &str) -> Result<(), ParseError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(ParseError(format!(
                "{} bytes left over after a {what} message",
                self.bytes.len() - self.at
            )))
        }
    }
}

/// The message's type byte, without parsing the rest.
pub fn kind(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

/// Whether a message of this type byte is a row change (`I`, `U`, `D`, `T`).
pub fn is_change(kind: u8) -> bool {
    matches!(kind, b'I' | b'U' | b'D' | b'T')
}

/// Parses one message.
pub fn parse(bytes: &[u8]) -> Result<Message<'_>, ParseError> {
    let mut r = Reader { bytes, at: 0 };
    let tag = r.u8("the message type")?;
    let message = match tag {
        b'B' => Message::Begin(Begin {
            final_lsn: r.u64("Begin.final_lsn")?,
            commit_time: r.i64("Begin.timestamp")?,
            xid: r.u32("Begin.xid")?,
        }),
        b'C' => Message::Commit(Commit {
            flags: r.u8("Commit.flags")?,
            commit_lsn: r.u64("Commit.commit_lsn")?,
            end_lsn: r.u64("Commit.end_lsn")?,
            commit_time: r.i64("Commit.timestamp")?,
        }),
        b'O' => Message::Origin {
            lsn: r.u64("Origin.lsn")?,
            name: r.string("Origin.name")?,
        },
        b'R' => {
            let oid = r.u32("Relation.oid")?;
            let namespace = r.string("Relation.namespace")?;
            let name = r.string("Relation.name")?;
            let replica_identity = r.u8("Relation.replica_identity")?;
            let n = r.i16("Relation.columns")?;
            let n = usize::try_from(n).map_err(|_| ParseError(format!("{n} columns")))?;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                columns.push(RelationColumn {
                    flags: r.u8("a column's flags")?,
                    name: r.string("a column's name")?,
                    type_oid: r.u32("a column's type")?,
                    type_modifier: r.i32("a column's type modifier")?,
                });
            }
            Message::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32("Type.oid")?,
            namespace: r.string("Type.namespace")?,
            name: r.string("Type.name")?,
        },
        b'I' => {
            let relation = r.u32("Insert.relation")?;
            r.new_marker()?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32("Update.relation")?;
            let marker = r.u8("Update's tuple marker")?;
            let old = if marker == b'N' {
                None
            } else {
                let kind = r.old(marker)?;
                let tuple = r.tuple()?;
                r.new_marker()?;
                Some((kind, tuple))
            };
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32("Delete.relation")?;
            let marker = r.u8("Delete's tuple marker")?;
            let kind = r.old(marker)?;
            Message::Delete {
                relation,
                kind,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32("Truncate.relations")?;
            let options = r.u8("Truncate.options")?;
            let mut relations = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                relations.push(r.u32("a truncated relation")?);
            }
            Message::Truncate { options, relations }
        }
        b'M' => {
            let transactional = r.u8("Message.flags")? & 1 == 1;
            let lsn = r.u64("Message.lsn")?;
            let prefix = r.string("Message.prefix")?;
            let len = r.u32("Message.length")? as usize;
            Message::Message {
                transactional,
                lsn,
                prefix,
                content: r.take(len, "Message.content")?,
            }
        }
        other => {
            return Err(ParseError(format!(
                "unknown message type {:?} (0x{other:02x}); was the slot read with proto_version 1?",
                char::from(other)
            )));
        }
    };
    r.done(match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        _ => "Message",
    })?;
    Ok(message)
}

/// Builders of pgoutput messages, for tests: the inverse of [`parse`].
#[cfg(test)]
pub mod build {
    use super::{Datum, Old};

    /// A message under construction.
    #[derive(Default)]
    pub struct Bytes(pub Vec<u8>);

    impl Bytes {
        /// Starts a message of type `tag`.
        pub fn new(tag: u8) -> Bytes {
            Bytes(vec![tag])
        }
        /// Appends a byte.
        pub fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        /// Appends a big-endian i16.
        pub fn i16(mut self, v: i16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// Appends a big-endian u32.
        pub fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// Appends a big-endian i32.
        pub fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// Appends a big-endian u64.
        pub fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// Appends a big-endian i64.
        pub fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        /// Appends a NUL-terminated string.
        pub fn string(mut self, s: &str) -> Self {
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
            self
        }
        /// Appends tuple data.
        pub fn tuple(mut self, values: &[Datum<'_>]) -> Self {
            self.0
                .extend_from_slice(&(values.len() as i16).to_be_bytes());
            for v in values {
                match v {
                    Datum::Null => self.0.push(b'n'),
                    Datum::Unchanged => self.0.push(b'u'),
                    Datum::Text(t) | Datum::Binary(t) => {
                        self.0.push(if matches!(v, Datum::Text(_)) {
                            b't'
                        } else {
                            b'b'
                        });
                        self.0.extend_from_slice(&(t.len() as i32).to_be_bytes());
                        self.0.extend_from_slice(t);
                    }
                }
            }
            self
        }
    }

    /// A `Begin`.
    pub fn begin(final_lsn: u64, commit_time: i64, xid: u32) -> Vec<u8> {
        Bytes::new(b'B').u64(final_lsn).i64(commit_time).u32(xid).0
    }

    /// A `Commit`.
    pub fn commit(commit_lsn: u64, end_lsn: u64, commit_time: i64) -> Vec<u8> {
        Bytes::new(b'C')
            .u8(0)
            .u64(commit_lsn)
            .u64(end_lsn)
            .i64(commit_time)
            .0
    }

    /// A `Relation`; columns are `(key?, name, type oid)`.
    pub fn relation(
        oid: u32,
        namespace: &str,
        name: &str,
        identity: u8,
        columns: &[(bool, &str, u32)],
    ) -> Vec<u8> {
        let mut b = Bytes::new(b'R')
            .u32(oid)
            .string(namespace)
            .string(name)
            .u8(identity)
            .i16(columns.len() as i16);
        for (key, col, ty) in columns {
            b = b.u8(u8::from(*key)).string(col).u32(*ty).i32(-1);
        }
        b.0
    }

    /// An `Insert`.
    pub fn insert(relation: u32, new: &[Datum<'_>]) -> Vec<u8> {
        Bytes::new(b'I').u32(relation).u8(b'N').tuple(new).0
    }

    /// An `Update`.
    pub fn update(relation: u32, old: Option<(Old, &[Datum<'_>])>, new: &[Datum<'_>]) -> Vec<u8> {
        let mut b = Bytes::new(b'U').u32(relation);
        if let Some((kind, values)) = old {
            b = b
                .u8(if kind == Old::Key { b'K' } else { b'O' })
                .tuple(values);
        }
        b.u8(b'N').tuple(new).0
    }

    /// A `Delete`.
    pub fn delete(relation: u32, kind: Old, old: &[Datum<'_>]) -> Vec<u8> {
        Bytes::new(b'D')
            .u32(relation)
            .u8(if kind == Old::Key { b'K' } else { b'O' })
            .tuple(old)
            .0
    }

    /// A `Truncate`.
    pub fn truncate(options: u8, relations: &[u32]) -> Vec<u8> {
        let mut b = Bytes::new(b'T').u32(relations.len() as u32).u8(options);
        for r in relations {
            b = b.u32(*r);
        }
        b.0
    }

    /// An `Origin`.
    pub fn origin(lsn: u64, name: &str) -> Vec<u8> {
        Bytes::new(b'O').u64(lsn).string(name).0
    }

    /// A `Type`.
    pub fn type_(oid: u32, namespace: &str, name: &str) -> Vec<u8> {
        Bytes::new(b'Y').u32(oid).string(namespace).string(name).0
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn begin_and_commit() {
        let b = begin(0x0100_0000_0192_5358, 788_000_000_123_456, 727);
        assert_eq!(
            parse(&b).unwrap(),
            Message::Begin(Begin {
                final_lsn: 0x0100_0000_0192_5358,
                commit_time: 788_000_000_123_456,
                xid: 727,
            })
        );
        let c = commit(0x0192_5358, 0x0192_5388, 788_000_000_123_456);
        assert_eq!(
            parse(&c).unwrap(),
            Message::Commit(Commit {
                flags: 0,
                commit_lsn: 0x0192_5358,
                end_lsn: 0x0192_5388,
                commit_time: 788_000_000_123_456,
            })
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The rows PostgreSQL 15.18 returned for `BEGIN; INSERT INTO orders
    /// VALUES (2, 'x', 2, now(), NULL, NULL); UPDATE orders SET note = 'y'
    /// WHERE id = 1; DELETE FROM orders WHERE id = 2; COMMIT;` on
    /// `orders(id int primary key, note text, amount numeric, at
    /// timestamptz, data jsonb, b bytea)`, read with
    /// `pg_logical_slot_peek_binary_changes(..., 'proto_version', '1', ...)`.
    #[test]
    fn real_server_bytes() {
        let rows = [
            "4200000000019254d00003044964b7817f000002d8",
            "52000040017075626c6963006f7264657273006400060169640000000017ffffffff006e6f74650000000019ffffffff00616d6f756e7400000006a4ffffffff00617400000004a0ffffffff00646174610000000edaffffffff00620000000011ffffffff",
            "49000040014e0006740000000132740000000178740000000132740000001d323032362d31312d32372032333a34333a31392e3030323834342b30306e6e",
            "55000040014e00067400000001317400000001797400000004312e3530740000001d323032342d30312d30322030313a30343a30352e3132333435362b303074000000087b2261223a20317d74000000065c7830313032",
            "44000040014b00067400000001326e6e6e6e6e",
            "430000000000019254d000000000019255000003044964b7817f",
        ]
        .map(hex);
        let Message::Begin(b) = parse(&rows[0]).unwrap() else {
            panic!("not a begin")
        };
        assert_eq!(b.final_lsn, 0x0192_54d0);
        assert_eq!(b.xid, 728);
        let Message::Relation(rel) = parse(&rows[1]).unwrap() else {
            panic!("not a relation");
        };
        assert_eq!(rel.oid, 0x4001);
        assert_eq!((rel.namespace, rel.name), ("public", "orders"));
        assert_eq!(rel.replica_identity, b'd');
        let cols: Vec<_> = rel
            .columns
            .iter()
            .map(|c| (c.flags, c.name, c.type_oid, c.type_modifier))
            .collect();
        assert_eq!(
            cols,
            [
                (1, "id", 23, -1),
                (0, "note", 25, -1),
                (0, "amount", 1700, -1),
                (0, "at", 1184, -1),
                (0, "data", 3802, -1),
                (0, "b", 17, -1)
            ]
        );
        let Message::Insert { relation, new } = parse(&rows[2]).unwrap() else {
            panic!("not an insert");
        };
        assert_eq!(relation, 0x4001);
        assert_eq!(new.values[1], Datum::Text(b"x"));
        assert_eq!(new.values[3], Datum::Text(b"2026-11-27 23:43:19.002844+00"));
        assert_eq!(new.values[4], Datum::Null);
        let Message::Update { old, new, .. } = parse(&rows[3]).unwrap() else {
            panic!("not an update");
        };
        assert_eq!(old, None);
        assert_eq!(new.values[4], Datum::Text(br#"{"a": 1}"#));
        assert_eq!(new.values[5], Datum::Text(br"\x0102"));
        let Message::Delete { kind, old, .. } = parse(&rows[4]).unwrap() else {
            panic!("not a delete");
        };
        assert_eq!(kind, Old::Key);
        assert_eq!(old.values[0], Datum::Text(b"2"));
        assert!(old.values[1..].iter().all(|v| *v == Datum::Null));
        let Message::Commit(c) = parse(&rows[5]).unwrap() else {
            panic!("not a commit")
        };
        assert_eq!(c.commit_lsn, b.final_lsn);
        assert_eq!(c.end_lsn, 0x0192_5500);
        assert_eq!(c.commit_time, b.commit_time);
    }

    #[test]
    fn relation_with_empty_namespace_and_type() {
        let r = relation(
            16_385,
            "",
            "t",
            b'f',
            &[(true, "a", 20), (true, "b", 16_390)],
        );
        let Message::Relation(rel) = parse(&r).unwrap() else {
            panic!()
        };
        assert_eq!(rel.namespace, "");
        assert_eq!(rel.replica_identity, b'f');
        assert_eq!(rel.columns[1].type_oid, 16_390);
        let y = type_(16_390, "public", "mood");
        assert_eq!(
            parse(&y).unwrap(),
            Message::Type {
                oid: 16_390,
                namespace: "public",
                name: "mood"
            }
        );
    }

    #[test]
    fn tuples_with_nulls_toast_and_multibyte_text() {
        let text = "日本語 ✓ ß";
        let i = insert(
            7,
            &[
                Datum::Text(b"42"),
                Datum::Null,
                Datum::Text(text.as_bytes()),
                Datum::Text(b""),
            ],
        );
        let Message::Insert { new, .. } = parse(&i).unwrap() else {
            panic!()
        };
        assert_eq!(new.values[1], Datum::Null);
        assert_eq!(new.values[2], Datum::Text(text.as_bytes()));
        assert_eq!(new.values[3], Datum::Text(b""));

        let u = update(7, None, &[Datum::Text(b"42"), Datum::Unchanged]);
        assert_eq!(
            parse(&u).unwrap(),
            Message::Update {
                relation: 7,
                old: None,
                new: Tuple {
                    values: vec![Datum::Text(b"42"), Datum::Unchanged]
                },
            }
        );
    }

    #[test]
    fn update_with_old_key_or_full_row() {
        let k = update(
            7,
            Some((Old::Key, &[Datum::Text(b"1"), Datum::Null])),
            &[Datum::Text(b"2"), Datum::Text(b"x")],
        );
        let Message::Update { old, new, .. } = parse(&k).unwrap() else {
            panic!()
        };
        assert_eq!(
            old,
            Some((
                Old::Key,
                Tuple {
                    values: vec![Datum::Text(b"1"), Datum::Null]
                }
            ))
        );
        assert_eq!(new.values[0], Datum::Text(b"2"));

        let o = update(
            7,
            Some((Old::Full, &[Datum::Text(b"1"), Datum::Text(b"big")])),
            &[Datum::Text(b"1"), Datum::Unchanged],
        );
        let Message::Update { old, .. } = parse(&o).unwrap() else {
            panic!()
        };
        assert_eq!(old.unwrap().0, Old::Full);
    }

    #[test]
    fn delete_truncate_origin() {
        let d = delete(9, Old::Key, &[Datum::Text(b"5"), Datum::Null]);
        assert_eq!(
            parse(&d).unwrap(),
            Message::Delete {
                relation: 9,
                kind: Old::Key,
                old: Tuple {
                    values: vec![Datum::Text(b"5"), Datum::Null]
                }
            }
        );
        let t = truncate(3, &[9, 10]);
        assert_eq!(
            parse(&t).unwrap(),
            Message::Truncate {
                options: 3,
                relations: vec![9, 10]
            }
        );
        let o = origin(0xAB, "pg_16384");
        assert_eq!(
            parse(&o).unwrap(),
            Message::Origin {
                lsn: 0xAB,
                name: "pg_16384"
            }
        );
    }

    #[test]
    fn logical_message() {
        let m = Bytes::new(b'M')
            .u8(1)
            .u64(5)
            .string("app")
            .u32(3)
            .0
            .into_iter()
            .chain(*b"abc")
            .collect::<Vec<u8>>();
        assert_eq!(
            parse(&m).unwrap(),
            Message::Message {
                transactional: true,
                lsn: 5,
                prefix: "app",
                content: b"abc"
            }
        );
    }

    #[test]
    fn broken_messages_are_errors() {
        assert!(parse(b"").is_err());
        assert!(parse(b"Z").unwrap_err().0.contains("unknown message type"));
        let mut b = begin(1, 2, 3);
        b.pop();
        assert!(parse(&b).unwrap_err().0.contains("cut short"));
        let mut c = commit(1, 2, 3);
        c.push(0);
        assert!(parse(&c).unwrap_err().0.contains("left over"));
        // A value longer than the message.
        let mut i = Bytes::new(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(10).0;
        i.extend_from_slice(b"abc");
        assert!(parse(&i).is_err());
        // A negative length.
        let i = Bytes::new(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(-1).0;
        assert!(parse(&i).is_err());
        // An unknown column kind.
        let i = Bytes::new(b'I').u32(1).u8(b'N').i16(1).u8(b'x').0;
        assert!(parse(&i).unwrap_err().0.contains("kind"));
        // A string without its NUL.
        let r = Bytes::new(b'O')
            .u64(1)
            .0
            .into_iter()
            .chain(*b"abc")
            .collect::<Vec<_>>();
        assert!(parse(&r).unwrap_err().0.contains("NUL"));
        // Invalid UTF-8 in a name.
        let r = Bytes::new(b'O').u64(1).u8(0xff).u8(0).0;
        assert!(parse(&r).unwrap_err().0.contains("UTF-8"));
        // A delete without K or O.
        let d = Bytes::new(b'D').u32(1).u8(b'N').tuple(&[]).0;
        assert!(parse(&d).is_err());
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(&begin(1, 2, 3)), Some(b'B'));
        assert!(is_change(b'I') && is_change(b'U') && is_change(b'D') && is_change(b'T'));
        assert!(!is_change(b'R') && !is_change(b'B') && !is_change(b'C'));
    }
}
