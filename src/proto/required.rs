//! Checks proto2 `required` fields, which prost does not enforce on decode.

use prost_reflect::{Cardinality, DynamicMessage, ReflectMessage, Value};

/// Returns the dotted path of the first missing `required` field in
/// `message` or in any message nested in it (repeated and map values too).
pub(crate) fn first_missing(message: &DynamicMessage) -> Option<String> {
    for field in message.descriptor().fields() {
        if field.cardinality() == Cardinality::Required && !message.has_field(&field) {
            return Some(field.name().to_string());
        }
    }
    for (field, value) in message.fields() {
        if let Some(path) = missing_in_value(value) {
            return Some(format!("{}.{path}", field.name()));
        }
    }
    None
}

fn missing_in_value(value: &Value) -> Option<String> {
    match value {
        Value::Message(nested) => first_missing(nested),
        Value::List(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| missing_in_value(item).map(|path| format!("[{i}].{path}"))),
        Value::Map(entries) => entries
            .iter()
            .find_map(|(key, item)| missing_in_value(item).map(|path| format!("[{key:?}].{path}"))),
        _ => None,
    }
}
