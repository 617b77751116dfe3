//! The error type of `crate::proto`.

/// Why bytes or JSON could not become a protocol message.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The bytes are not a valid encoding of the message.
    #[error("cannot decode {message}: {source}")]
    Decode {
        /// Full name of the message type, e.g. `mesos.internal.RunTaskMessage`.
        message: String,
        #[source]
        source: prost::DecodeError,
    },

    /// No message of this full name is in the descriptor set.
    #[error("no message type {0} in the descriptor set")]
    UnknownMessage(String),

    /// A proto2 `required` field is absent (prost itself never checks).
    #[error("cannot accept {message}: required field `{field}` is missing")]
    MissingRequired {
        /// Full name of the outermost message type.
        message: String,
        /// Dotted path of the missing field from the outermost message,
        /// e.g. `update.status.task_id`.
        field: String,
    },

    /// The JSON is malformed, names an unknown field, or has a value of
    /// the wrong type (serde's message names the field).
    #[error("cannot parse {message} from JSON: {source}")]
    Json {
        /// Full name of the message type.
        message: String,
        #[source]
        source: serde_json::Error,
    },
}
