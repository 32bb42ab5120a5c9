//! One side's version of one key, as the sync engine compares and stores
//! it: typed field values by model field name (a side's own names are
//! renamed on the way in and out), whether the key exists there, and its
//! version number and timestamp when known.

use std::collections::BTreeMap;

use ferry_host::batch::{BatchExt, ValueRef};
use ferry_host::{Batch, Column, Op, Texts, Values};
use serde::{Deserialize, Serialize};

/// A field value. Null is an absent field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(String),
    /// Bytes, hex-encoded.
    Bytes(String),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    /// A JSON document's text.
    Json(String),
}

impl Value {
    fn from_ref(v: ValueRef<'_>) -> Option<Value> {
        Some(match v {
            ValueRef::Null => return None,
            ValueRef::Int(x) => Value::Int(x),
            ValueRef::Float(x) => Value::Float(x),
            ValueRef::Bool(x) => Value::Bool(x),
            ValueRef::Text(s) => Value::Text(s.to_string()),
            ValueRef::Bytes(b) => Value::Bytes(hex::encode(b)),
            ValueRef::Timestamp(x) => Value::Timestamp(x),
            ValueRef::Json(s) => Value::Json(s.to_string()),
        })
    }

    /// The value as plain JSON, for people (timestamps as RFC 3339).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Int(x) => J::from(*x),
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::Bool(x) => J::Bool(*x),
            Value::Text(s) | Value::Bytes(s) => J::String(s.clone()),
            Value::Timestamp(us) => J::String(ferry_host::batch::rfc3339_micros(*us)),
            Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.clone())),
        }
    }

    /// A number, for comparisons (ints, floats, timestamps, numeric text).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(x) | Value::Timestamp(x) => Some(*x as f64),
            Value::Float(x) => Some(*x),
            Value::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// An instant in microseconds: a timestamp, an integer, or RFC 3339
    /// text.
    pub fn as_micros(&self) -> Option<i64> {
        match self {
            Value::Timestamp(x) | Value::Int(x) => Some(*x),
            Value::Text(s) => ferry_host::batch::parse_rfc3339_micros(s),
            _ => None,
        }
    }

    /// The form compared across sides: an integral float is the integer,
    /// a JSON document its canonical text (so two systems that store the
    /// same data differently still agree).
    pub(crate) fn normalized(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => J::from(*x as i64),
            Value::Int(x) | Value::Timestamp(x) => J::from(*x),
            Value::Json(s) => match serde_json::from_str::<J>(s) {
                Ok(v) => J::String(canonical_json(&v)),
                Err(_) => J::String(s.clone()),
            },
            other => other.to_json(),
        }
    }

    /// Converts a person's JSON value to the type `like` has (the type the
    /// field has on the sides), for `ferry conflicts resolve --take merged`.
    pub fn from_json_like(v: &serde_json::Value, like: Option<&Value>) -> Option<Value> {
        use serde_json::Value as J;
        Some(match (v, like) {
            (J::Null, _) => return None,
            (J::String(s), Some(Value::Timestamp(_))) => {
                match ferry_host::batch::parse_rfc3339_micros(s) {
                    Some(us) => Value::Timestamp(us),
                    None => Value::Text(s.clone()),
                }
            }
            (J::String(s), Some(Value::Bytes(_))) => Value::Bytes(s.clone()),
            (J::String(s), Some(Value::Json(_))) => Value::Json(s.clone()),
            (J::String(s), _) => Value::Text(s.clone()),
            (J::Bool(b), _) => Value::Bool(*b),
            (J::Number(n), Some(Value::Float(_))) => Value::Float(n.as_f64()?),
            (J::Number(n), _) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64()?),
            },
            (other, _) => Value::Json(other.to_string()),
        })
    }
}

fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Object(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{v}", J::String((*k).clone())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        J::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// One side's version of a key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Version {
    /// Field values by model name; a null field is absent.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// The key does not exist (deleted, or never created).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The side's version number, when its connector reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The record's updated-at, when its connector reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

impl Version {
    /// A key that does not exist.
    pub fn absent() -> Version {
        Version {
            deleted: true,
            ..Version::default()
        }
    }

    /// The checksum of the content: the fields (normalized) and whether the
    /// key exists; not the version number or updated-at, which are each
    /// side's own.
    pub fn hash(&self) -> String {
        if self.deleted {
            return "deleted".to_string();
        }
        let normalized: BTreeMap<&String, serde_json::Value> = self
            .fields
            .iter()
            .map(|(k, v)| (k, v.normalized()))
            .collect();
        let text = serde_json::to_string(&normalized).unwrap_or_default();
        ferry_host::sha256_hex(text.as_bytes())[..32].to_string()
    }

    /// Whether two versions hold the same content (a deleted key's
    /// checksum is its own, so this covers deletes too).
    pub fn same_content(&self, other: &Version) -> bool {
        self.hash() == other.hash()
    }

    /// Plain JSON for people: the fields, or `null` for a deleted key.
    pub fn to_plain(&self) -> serde_json::Value {
        if self.deleted {
            return serde_json::Value::Null;
        }
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }

    /// This version's JSON for the state store.
    pub fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A version from the state store's JSON.
    pub fn from_stored(v: &serde_json::Value) -> Option<Version> {
        serde_json::from_value(v.clone()).ok()
    }
}

/// The model name each column of a batch stands for (`rename`: model ->
/// side), or `None` for a column outside `fields`: worked out once per
/// batch, not per record.
fn model_names(
    batch: &Batch,
    rename: &indexmap::IndexMap<String, String>,
    fields: Option<&[String]>,
) -> Vec<Option<String>> {
    batch
        .columns
        .iter()
        .map(|c| {
            let model = rename
                .iter()
                .find(|(_, side)| **side == c.name)
                .map_or(c.name.as_str(), |(m, _)| m.as_str());
            fields
                .is_none_or(|f| f.iter().any(|x| x == model))
                .then(|| model.to_string())
        })
        .collect()
}

/// Record `i` of `batch` as a version, its columns named by `names`
/// ([`model_names`]).
fn version_at(batch: &Batch, i: usize, names: &[Option<String>]) -> Version {
    let mut out = Version {
        deleted: batch.ops.get(i) == Some(&Op::Delete),
        version: batch.versions.as_ref().and_then(|v| v.get(i).copied()),
        updated_at: batch.updated_at.as_ref().and_then(|v| v.get(i).copied()),
        ..Version::default()
    };
    if out.deleted {
        return out;
    }
    for (c, name) in batch.columns.iter().zip(names) {
        if let Some(name) = name
            && let Some(v) = Value::from_ref(c.value(i))
        {
            out.fields.insert(name.clone(), v);
        }
    }
    out
}

/// Reads record `i` of `batch` as a version, with the side's field names
/// turned into model names (`rename`: model -> side) and, when `fields` is
/// given, only those fields.
pub fn version_of(
    batch: &Batch,
    i: usize,
    rename: &indexmap::IndexMap<String, String>,
    fields: Option<&[String]>,
) -> Version {
    version_at(batch, i, &model_names(batch, rename, fields))
}

/// Builds a batch of versions to write to a side: model names turned into
/// the side's (`rename`), a deleted version as a delete. Each column takes
/// the type its values have (ints and floats mixed become floats; other
/// mixes are JSON). `also` names fields to send even where no row has a
/// value: sinks leave a column they are not given untouched, so a field a
/// version cleared must be sent as an explicit null.
pub fn batch_of(
    rows: &[(&str, &Version)],
    rename: &indexmap::IndexMap<String, String>,
    origin: &str,
    also: &[String],
) -> Batch {
    let mut names: Vec<&String> = also.iter().collect();
    for (_, v) in rows {
        for k in v.fields.keys() {
            if !names.contains(&k) {
                names.push(k);
            }
        }
    }
    let n = rows.len();
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let cells: Vec<Option<&Value>> = rows.iter().map(|(_, v)| v.fields.get(name)).collect();
        #[derive(PartialEq, Clone, Copy)]
        enum K {
            None,
            Int,
            Float,
            Bool,
            Text,
            Bytes,
            Ts,
            Json,
            Mixed,
        }
        let kind = cells.iter().flatten().fold(K::None, |k, v| {
            let this = match v {
                Value::Int(_) => K::Int,
                Value::Float(_) => K::Float,
                Value::Bool(_) => K::Bool,
                Value::Text(_) => K::Text,
                Value::Bytes(_) => K::Bytes,
                Value::Timestamp(_) => K::Ts,
                Value::Json(_) => K::Json,
            };
            match (k, this) {
                (K::None, t) => t,
                (a, b) if a == b => a,
                (K::Int, K::Float) | (K::Float, K::Int) => K::Float,
                _ => K::Mixed,
            }
        });
        let valid: Vec<bool> = cells.iter().map(Option::is_some).collect();
        let texts = |f: &dyn Fn(&Value) -> Vec<u8>| {
            let mut t = Texts::empty();
            for c in &cells {
                t.push(&c.map(f).unwrap_or_default());
            }
            t
        };
        let values = match kind {
            K::Int => Values::Ints(
                cells
                    .iter()
                    .map(|c| match c {
                        Some(Value::Int(x)) => *x,
                        _ => 0,
                    })
                    .collect(),
            ),
            K::Float => Values::Floats(
                cells
                    .iter()
                    .map(|c| c.and_then(Value::as_f64).unwrap_or(0.0))
                    .collect(),
            ),
            K::Bool => Values::Bools(
                cells
                    .iter()
                    .map(|c| matches!(c, Some(Value::Bool(true))))
                    .collect(),
            ),
            K::Ts => Values::Timestamps(
                cells
                    .iter()
                    .map(|c| match c {
                        Some(Value::Timestamp(x)) => *x,
                        _ => 0,
                    })
                    .collect(),
            ),
            K::Bytes => Values::Bytes(texts(&|v| match v {
                Value::Bytes(h) => hex::decode(h).unwrap_or_default(),
                _ => Vec::new(),
            })),
            K::Text | K::None => Values::Text(texts(&|v| match v {
                Value::Text(s) => s.clone().into_bytes(),
                _ => Vec::new(),
            })),
            K::Json => Values::Json(texts(&|v| match v {
                Value::Json(s) => s.clone().into_bytes(),
                _ => Vec::new(),
            })),
            K::Mixed => Values::Json(texts(&|v| v.to_json().to_string().into_bytes())),
        };
        let side_name = rename.get(name.as_str()).unwrap_or(name);
        columns.push(Column {
            name: side_name.clone(),
            values,
            valid: valid.iter().any(|v| !v).then_some(valid),
        });
    }
    let mut origins = Texts::empty();
    for _ in 0..n {
        origins.push(origin.as_bytes());
    }
    Batch {
        keys: Texts::from_strs(rows.iter().map(|(k, _)| *k)),
        ops: rows
            .iter()
            .map(|(_, v)| if v.deleted { Op::Delete } else { Op::Upsert })
            .collect(),
        versions: None,
        updated_at: rows.iter().all(|(_, v)| v.updated_at.is_some()).then(|| {
            rows.iter()
                .map(|(_, v)| v.updated_at.unwrap_or(0))
                .collect()
        }),
        origins: Some(origins),
        columns,
    }
}

/// Reads a fetched batch into versions by key.
pub fn versions_by_key(
    batch: &Batch,
    rename: &indexmap::IndexMap<String, String>,
    fields: Option<&[String]>,
) -> std::collections::HashMap<String, Version> {
    let names = model_names(batch, rename, fields);
    (0..batch.len())
        .map(|i| (batch.key(i).to_string(), version_at(batch, i, &names)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(fields: &[(&str, Value)]) -> Version {
        Version {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Version::default()
        }
    }

    #[test]
    fn the_checksum_ignores_representation_but_not_content() {
        let a = v(&[
            ("n", Value::Int(3)),
            ("j", Value::Json(r#"{"b":1,"a":2}"#.into())),
        ]);
        let b = v(&[
            ("n", Value::Float(3.0)),
            ("j", Value::Json(r#"{"a":2, "b":1}"#.into())),
        ]);
        assert_eq!(a.hash(), b.hash());
        let c = v(&[
            ("n", Value::Int(4)),
            ("j", Value::Json(r#"{"a":2,"b":1}"#.into())),
        ]);
        assert_ne!(a.hash(), c.hash());
        let mut d = a.clone();
        d.version = Some(9);
        d.updated_at = Some(1);
        assert_eq!(a.hash(), d.hash(), "version and updated-at are not content");
        assert_ne!(a.hash(), Version::absent().hash());
    }

    #[test]
    fn versions_round_trip_through_a_batch_with_renames() {
        let mut rename = indexmap::IndexMap::new();
        rename.insert("email".to_string(), "email_address".to_string());
        let a = v(&[
            ("email", Value::Text("a@x".into())),
            ("limit", Value::Int(5)),
            ("seen", Value::Timestamp(1_700_000_000_000_000)),
        ]);
        let b = v(&[
            ("email", Value::Text("b@x".into())),
            ("limit", Value::Float(2.5)),
        ]);
        let batch = batch_of(
            &[("1", &a), ("2", &b), ("3", &Version::absent())],
            &rename,
            "ferry",
            &["gone".to_string()],
        );
        assert!(batch.check().is_ok());
        assert!(batch.column("email_address").is_some());
        let gone = batch.column("gone").expect("an explicit null column");
        assert_eq!(gone.valid.as_deref(), Some(&[false, false, false][..]));
        let back = versions_by_key(&batch, &rename, None);
        assert_eq!(back["1"].hash(), a.hash());
        assert_eq!(back["2"].hash(), b.hash());
        assert!(back["3"].deleted);
        let only = versions_by_key(&batch, &rename, Some(&["email".to_string()]));
        assert_eq!(only["1"].fields.len(), 1);
    }
}
