//! PROVISIONAL stand-in for the strict JSON document model (being written): same API, but
//! without duplicate-key detection. Replace wholesale.

use bytes::Bytes;
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
pub struct JsonLimits {
    pub max_depth: usize,
    pub max_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits {
            max_depth: 128,
            max_bytes: 8 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("syntax error at line {line} column {column}")]
    Syntax { line: usize, column: usize },
    #[error("larger than {limit} bytes")]
    TooLarge { limit: usize },
}

impl JsonError {
    pub fn reason(&self) -> &'static str {
        match self {
            JsonError::Syntax { .. } => "syntax",
            JsonError::TooLarge { .. } => "too-large",
        }
    }
}

pub fn parse(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    if bytes.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax {
        line: e.line(),
        column: e.column(),
    })
}

pub fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

pub fn is_json_media_type(content_type: &str) -> bool {
    let mt = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mt == "application/json" || mt.ends_with("+json")
}
