//! JSON has no NaN or infinity: serde helpers that write them as `null` and read `null` back as NaN
//! (`#[serde(with = "crate::nan_as_null")]`), so that a NaN measurement survives a round trip as NaN.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a non-finite value as `null`.
pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_none()
    }
}

/// Reads `null` as NaN.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}
