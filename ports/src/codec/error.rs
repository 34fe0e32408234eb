//! [`CodecError`]: why bytes could not be encoded or decoded.

use super::Format;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes do not start with this library's header: written by something else, or not a value at all.
    #[error("unknown value format: the bytes lack the cpc codec header (foreign or garbled data)")]
    UnknownFormat,
    /// The header names a format or compression this version does not know.
    #[error("unsupported codec header: {0}")]
    Unsupported(String),
    /// The value is larger than the decoder is allowed to produce (guards against decompression bombs).
    #[error("decoded value exceeds {max} bytes")]
    TooLarge {
        /// The configured limit.
        max: usize,
    },
    /// The payload could not be decompressed.
    #[error("corrupt compressed payload: {0}")]
    Decompress(String),
    /// Serialization failed (e.g. a map with non-string keys in JSON).
    #[error("cannot encode value as {format:?}: {message}")]
    Encode {
        /// The format attempted.
        format: Format,
        /// The serializer's message.
        message: String,
    },
    /// The payload is well framed but does not deserialize into the requested type.
    #[error("cannot decode {format:?} value: {message}")]
    Decode {
        /// The format found in the header.
        format: Format,
        /// The deserializer's message.
        message: String,
    },
    /// A counter operation ([`Cache::increment_by`](crate::Cache::increment_by)) found a value that is not a
    /// decimal `i64` in ASCII (`0`, or an optional `-` and digits without a leading zero, as Redis `INCRBY` takes
    /// it). The value was left unchanged.
    #[error("the stored value is not a decimal 64-bit integer")]
    NotAnInteger,
    /// A counter operation would take the value beyond the range of `i64`. The value was left unchanged.
    #[error("the counter would overflow a 64-bit integer")]
    CounterOverflow,
    /// The value is encrypted with a key id the keyring does not list: written with a key since removed, or by
    /// another deployment. Add the key back (as an older one) to read it.
    #[error("the value is encrypted with key {key_id:?}, which the keyring does not list")]
    UnknownKey {
        /// The key id named in the value's envelope.
        key_id: String,
    },
    /// The value names a listed key but does not decrypt: tampered with, truncated, or encrypted with another
    /// key under the same id.
    #[error("the value encrypted with key {key_id:?} does not decrypt (tampered, truncated or a different key)")]
    Decrypt {
        /// The key id named in the value's envelope.
        key_id: String,
    },
    /// A plaintext value was read by a codec with encryption on, and the keyring refuses plaintext
    /// ([`Keyring::allow_plaintext`](super::Keyring::allow_plaintext), `CPC_ENCRYPTION_ALLOW_PLAINTEXT`).
    #[error("the value is not encrypted, and this keyring does not allow plaintext values")]
    PlaintextRefused,
    /// An encrypted value was read by a codec without a keyring ([`Codec::with_encryption`](super::Codec::with_encryption)).
    #[error("the value is encrypted, but the codec has no keyring")]
    NoKeyring,
}
