//! JSON-RPC request ids, kept exactly as sent.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};

use super::{InvalidMessage, describe};

/// A JSON-RPC request id: a string or an integer, kept exactly as sent.
///
/// Numbers keep their source text (`arbitrary_precision`), so ids beyond
/// `i64`/`u64` and negative ids round-trip unchanged, and `1` and `"1"` are
/// different ids. `Display` writes the id as it appears in JSON (strings
/// quoted), so the two never look alike in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// An integer id, as its JSON text.
    Number(Number),
    /// A string id.
    String(String),
}

/// Whether `text` is a JSON integer: `-?(0|[1-9][0-9]*)`.
pub(super) fn is_json_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    match digits.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

impl Id {
    /// Reads an id from its JSON value. `null` is refused like any other
    /// non-id: callers that accept a missing id (error responses) handle
    /// `null` before calling this.
    pub fn from_value(value: Value) -> Result<Id, InvalidMessage> {
        match value {
            Value::String(s) => Ok(Id::String(s)),
            Value::Number(n) if is_json_integer(n.as_str()) => Ok(Id::Number(n)),
            Value::Null => Err(InvalidMessage::NullId),
            other => Err(InvalidMessage::InvalidId {
                found: describe(&other),
            }),
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Id::Number(n) => Value::Number(n.clone()),
            Id::String(s) => Value::String(s.clone()),
        }
    }
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Id::Number(n.into())
    }
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Number(n.into())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Id::String(s)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Id::String(s.to_owned())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => f.write_str(n.as_str()),
            Id::String(s) => {
                let json = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&json)
            }
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Id::Number(n) => n.serialize(serializer),
            Id::String(s) => s.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Id::from_value(value).map_err(serde::de::Error::custom)
    }
}
