//! Small helpers for reading register values and addresses out of JSON.

use serde_json::Value;

/// Reads a u64 from a JSON hex string (`"0x1f"` or `"1f"`) or a JSON number.
///
/// # Errors
/// A message naming `field` when the value is missing, not a string or number, or not a
/// valid 64-bit hexadecimal number.
pub fn u64_field(obj: &Value, field: &str) -> Result<u64, String> {
    match obj.get(field) {
        None => Err(format!("missing field `{field}`")),
        Some(v) => u64_value(v).map_err(|e| format!("field `{field}`: {e}")),
    }
}

/// Reads an optional u64 field (see [`u64_field`]).
///
/// # Errors
/// As [`u64_field`], when the field is present but malformed.
pub fn opt_u64_field(obj: &Value, field: &str) -> Result<Option<u64>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => u64_field(obj, field).map(Some),
    }
}

/// Reads a u64 from a JSON hex string or number.
///
/// # Errors
/// A message when the value is not a valid 64-bit number.
pub fn u64_value(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) => parse_hex(s),
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{n} is not a 64-bit unsigned integer")),
        other => Err(format!("expected a hex string, got {other}")),
    }
}

/// Parses a hexadecimal u64 with an optional `0x` prefix and `_` separators.
///
/// # Errors
/// A message when the text is empty, has a non-hex digit or overflows 64 bits.
pub fn parse_hex(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        return Err(format!("`{s}` is not a hex number"));
    }
    u64::from_str_radix(&cleaned, 16).map_err(|e| format!("`{s}` is not a 64-bit hex number ({e})"))
}

/// Formats a value as lower-case hex with a `0x` prefix.
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// Escapes a message as a JSON string literal.
pub fn json_string(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}
