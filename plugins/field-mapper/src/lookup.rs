//! Lookup tables: a CSV file read at open, mapping one column to another.

use std::collections::HashMap;

use ferry_plugin::PluginError;

/// One `lookup` entry.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// The CSV file (with a header), in a granted folder.
    pub table: String,
    /// The record field whose value is looked up.
    #[serde(rename = "match")]
    pub match_field: String,
    /// The table column compared with it (default: the same name as `match`).
    #[serde(default)]
    pub key: Option<String>,
    /// The table column whose value is taken.
    pub column: String,
    /// The record field written (default: the same name as `column`).
    #[serde(default)]
    pub into: Option<String>,
    /// The table's field delimiter, one character (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
}

/// A loaded table.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The field looked up.
    pub match_field: String,
    /// The field written.
    pub into: String,
    values: HashMap<String, Option<String>>,
}

impl Lookup {
    /// Reads the table. `at` names the entry in errors (`lookup[0]`).
    pub fn load(spec: &LookupSpec, at: &str) -> Result<Lookup, PluginError> {
        let text = std::fs::read_to_string(&spec.table).map_err(|e| {
            PluginError::invalid_config(format!(
                "config.{at}.table: cannot read {:?}: {e} (is its folder granted to this plugin?)",
                spec.table
            ))
        })?;
        let delimiter = match spec.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes().first().copied().unwrap_or(b','),
            Some(d) => {
                return Err(PluginError::invalid_config(format!(
                    "config.{at}.delimiter: {d:?} is not one character"
                )));
            }
        };
        let mut records = ferry_plugin::csv::parse_str(&text, delimiter).into_iter();
        let Some(header) = records.next().map(|r| r.fields) else {
            return Err(PluginError::invalid_config(format!(
                "config.{at}.table: {:?} is empty",
                spec.table
            )));
        };
        let names: Vec<String> = header.into_iter().map(Option::unwrap_or_default).collect();
        let find = |col: &str, setting: &str| {
            names.iter().position(|n| n == col).ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "config.{at}.{setting}: the table {:?} has no column {col:?} (its columns: {})",
                    spec.table,
                    names.join(", ")
                ))
            })
        };
        let key_name = spec.key.as_deref().unwrap_or(&spec.match_field);
        let key_at = find(key_name, if spec.key.is_some() { "key" } else { "match" })?;
        let value_at = find(&spec.column, "column")?;
        let mut values = HashMap::new();
        for ferry_plugin::csv::CsvLine {
            line,
            fields,
            malformed,
        } in records
        {
            if malformed.is_some() || fields.len() != names.len() {
                return Err(PluginError::invalid_config(format!(
                    "config.{at}.table: line {line} of {:?} does not have {} well-formed fields",
                    spec.table,
                    names.len()
                )));
            }
            if let Some(Some(key)) = fields.get(key_at) {
                let value = fields.get(value_at).cloned().flatten();
                // The first row with a key wins.
                values.entry(key.clone()).or_insert(value);
            }
        }
        Ok(Lookup {
            match_field: spec.match_field.clone(),
            into: spec.into.clone().unwrap_or_else(|| spec.column.clone()),
            values,
        })
    }

    /// The value for `key`, if the table has it (and it is not empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key)?.as_deref()
    }

    /// The number of keys in the table.
    pub fn len(&self) -> usize {
        self.values.len()
    }
}
