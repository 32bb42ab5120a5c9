//! The statuses that cross crates: how a run, a scheduled run and a
//! conflict stand, and which version a decision on a conflict takes.
//!
//! Each is stored (and printed, and written in JSON) as the text ferry
//! wrote before they were types (`running`, `failed: <why>`, `open`,
//! `left`, ...), so no file needs a migration and no output changes:
//! `Display` and serde give that text, `FromStr` reads it back and refuses
//! any other with [`StateError::Unknown`]. One macro writes all four, so a
//! status's texts are spelled once.

use std::borrow::Cow;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::StateError;

/// Declares a status enum stored as text: `Variant = "text"` for each
/// fixed text, and optionally, after `failed`, the variant that carries an
/// error and is stored as `failed: <why>`.
macro_rules! status {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(into = "String", try_from = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// The stored form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The stored form, as [`as_str`](Self::as_str) gives it.
            pub fn text(&self) -> Cow<'static, str> {
                Cow::Borrowed(self.as_str())
            }
        }

        status!(@text $name $what [$($variant = $text,)*] []);
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
        } failed {
            $(#[$fmeta:meta])* $failed:ident
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(into = "String", try_from = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            $(#[$fmeta])* $failed(String),
        }

        impl $name {
            /// The stored form; a failure is `failed: <why>`.
            pub fn text(&self) -> Cow<'_, str> {
                match self {
                    $($name::$variant => Cow::Borrowed($text),)*
                    $name::$failed(why) => Cow::Owned(format!("{FAILED}{why}")),
                }
            }
        }

        status!(@text $name $what [$($variant = $text,)*] [$failed]);
    };
    (@text $name:ident $what:literal [$($variant:ident = $text:literal,)*] [$($failed:ident)?]) => {
        impl FromStr for $name {
            type Err = StateError;

            fn from_str(s: &str) -> Result<Self, StateError> {
                match s {
                    $($text => return Ok($name::$variant),)*
                    _ => {}
                }
                $(if let Some(why) = s.strip_prefix(FAILED) {
                    return Ok($name::$failed(why.to_string()));
                })?
                Err(StateError::Unknown {
                    what: $what,
                    value: s.to_string(),
                    expected: &[$($text,)* $({ let _ = stringify!($failed); "failed: <why>" })?],
                })
            }
        }

        impl std::fmt::Display for $name {
            /// The stored form, padded as the format asks (`{:<9}`).
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(&self.text())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.text().into_owned()
            }
        }

        impl TryFrom<String> for $name {
            type Error = StateError;

            fn try_from(value: String) -> Result<Self, StateError> {
                value.parse()
            }
        }
    };
}

/// What a stored failure starts with, before its reason.
const FAILED: &str = "failed: ";

status! {
    /// How a run ([`RunRecord`](crate::RunRecord)) stands: stored as
    /// `running`, `finished` or `failed: <why>`.
    pub enum RunStatus ("run status") {
        /// Started and not ended (or ferry ended before recording its end).
        Running = "running",
        /// Ended having read its sources to their end or until stopped.
        Finished = "finished",
    } failed {
        /// Ended by an error, with the error.
        Failed
    }
}

status! {
    /// How a scheduled run ([`ScheduledRun`](crate::ScheduledRun)) stands:
    /// stored as `running`, `finished`, `stopped`, `interrupted` or
    /// `failed: <why>`.
    pub enum ScheduledOutcome ("scheduled run outcome") {
        /// Started and not ended.
        Running = "running",
        /// Read its sources to their end and committed what it read.
        Finished = "finished",
        /// Ferry was stopped during it: it committed what it had read.
        Stopped = "stopped",
        /// Ferry ended without recording its end: the next run of the
        /// pipeline found it still running.
        Interrupted = "interrupted",
    } failed {
        /// Ended by an error, with the error.
        Failed
    }
}

status! {
    /// Where a queued conflict ([`Conflict`](crate::Conflict)) stands:
    /// stored as `open`, `decided` or `resolved`.
    pub enum ConflictStatus ("conflict status") {
        /// Waiting for a person's decision (again, if a decision went stale).
        Open = "open",
        /// A person chose; the sync applies it next, if both sides still
        /// hold the versions it was made on.
        Decided = "decided",
        /// The decision was applied to both sides.
        Resolved = "resolved",
    }
}

status! {
    /// Which version a person's decision on a conflict takes: stored as
    /// `left`, `right` or `merged`.
    pub enum Choice ("conflict decision") {
        /// The left side's version.
        Left = "left",
        /// The right side's version.
        Right = "right",
        /// A merged version the person gave.
        Merged = "merged",
    }
}
