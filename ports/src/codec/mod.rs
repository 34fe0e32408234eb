//! Value codecs: JSON or MessagePack, optionally deflate-compressed above a size threshold, optionally encrypted
//! (XChaCha20-Poly1305, [`Codec::with_encryption`]), always behind a 4-byte header that marks the format. Reading
//! checks the header first, so bytes written by another program (or garbled in transit) come back as a
//! [`CodecError`], never as a panic or a wrong value. The header also makes every value self-describing: a reader
//! configured for JSON still reads MessagePack values, and the other way round, so the format can change without
//! flushing a cache.
//!
//! ```
//! use cpc_ports::{Codec, Compression};
//! let codec = Codec::msgpack().with_compression(Compression::above(1024));
//! let bytes = codec.encode(&vec!["a"; 2000]).unwrap();
//! assert!(bytes.len() < 2000);
//! let back: Vec<String> = codec.decode(&bytes).unwrap();
//! assert_eq!(back.len(), 2000);
//! assert!(codec.decode::<String>(b"plain text from elsewhere").is_err());
//! ```
//!
//! # Encryption at rest
//!
//! A codec given a [`Keyring`] seals every value it encodes in an envelope (see [`encryption`]) under the
//! keyring's primary key, and opens values sealed with any key the keyring lists, so keys rotate without a
//! flush: list the new key last, keep the old ones until the values they sealed have expired.
//!
//! ```
//! use cpc_ports::{Codec, CodecError, KeyId, Keyring};
//! let old = Keyring::new([(KeyId::new("2024")?, [7u8; 32])])?;
//! let rotated = Keyring::new([(KeyId::new("2024")?, [7u8; 32]), (KeyId::new("2025")?, [9u8; 32])])?;
//! let before = Codec::json().with_encryption(old).encode(&"secret")?;
//! let codec = Codec::json().with_encryption(rotated);
//! assert_eq!(codec.decode::<String>(&before)?, "secret"); // sealed with the old key, still read
//! let after = codec.encode(&"secret")?; // sealed with "2025", the newest
//! assert!(!after.windows(6).any(|w| w == b"secret"));
//! assert_eq!(Codec::json().decode::<String>(&after), Err(CodecError::NoKeyring));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod encryption;
mod error;
mod keyring;

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression as Level;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::CodecError;
pub use keyring::{ALLOW_PLAINTEXT_ENV, KEY_LEN, KEYS_ENV, KeyId, Keyring};

/// The first byte of every encoded value.
pub const MAGIC: u8 = 0xCB;
/// The header layout version of plaintext values, which this code writes and reads.
pub const HEADER_VERSION: u8 = 1;
/// The header version of encrypted envelopes ([`encryption`]). Readers older than encryption refuse it as
/// [`CodecError::Unsupported`] (`"header version 2"`), never as a wrong value.
pub const ENCRYPTED_HEADER_VERSION: u8 = 2;
const HEADER_LEN: usize = 4;
const FORMAT_JSON: u8 = b'j';
const FORMAT_MSGPACK: u8 = b'm';
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZLIB: u8 = b'z';

/// A serialization format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `serde_json`: readable with `redis-cli`, larger.
    Json,
    /// `rmp-serde` with named fields: compact, still self-describing.
    MessagePack,
}

/// Deflate (zlib) compression of values at or above `threshold` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Compression {
    /// Values whose serialized size is at least this many bytes are compressed.
    pub threshold: usize,
    /// zlib level, 0 (none) to 9 (smallest); 6 by default.
    pub level: u32,
}

impl Compression {
    /// Compress values of `threshold` bytes or more, at the default level.
    pub const fn above(threshold: usize) -> Self {
        Self { threshold, level: 6 }
    }
}

/// How values become bytes and back. Cheap to clone (the keyring, if any, is shared); every key-value port
/// exposes the one it was configured with, and the typed extension traits use it.
///
/// Two codecs are equal when they write the same format and compression, have the same decode limit, and have
/// equal keyrings (or none). Its `Debug` names the keyring's key ids, never a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    format: Format,
    compression: Option<Compression>,
    max_decoded_bytes: usize,
    encryption: Option<Arc<Keyring>>,
}

impl Hash for Codec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.format, self.compression, self.max_decoded_bytes).hash(state);
        self.encryption.as_deref().map(Keyring::primary).hash(state);
    }
}

impl Default for Codec {
    /// JSON, no compression, 64 MiB decode limit.
    fn default() -> Self {
        Self::json()
    }
}

impl Codec {
    /// The default decode limit: 64 MiB.
    pub const DEFAULT_MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

    /// JSON, uncompressed.
    pub const fn json() -> Self {
        Self {
            format: Format::Json,
            compression: None,
            max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES,
            encryption: None,
        }
    }

    /// MessagePack, uncompressed.
    pub const fn msgpack() -> Self {
        Self {
            format: Format::MessagePack,
            compression: None,
            max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES,
            encryption: None,
        }
    }

    /// The same codec, compressing large values.
    pub const fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// The same codec with another limit on decompressed size.
    pub const fn with_max_decoded_bytes(mut self, max: usize) -> Self {
        self.max_decoded_bytes = max;
        self
    }

    /// The same codec, encrypting every value it encodes with `keyring`'s primary key and decrypting values
    /// sealed with any key it lists ([`encryption`]). Whether it still reads plaintext values (written before
    /// encryption was turned on) is [`Keyring::allows_plaintext`].
    #[must_use]
    pub fn with_encryption(mut self, keyring: impl Into<Arc<Keyring>>) -> Self {
        self.encryption = Some(keyring.into());
        self
    }

    /// The keyring values are encrypted with, if encryption is on.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.encryption.as_deref()
    }

    /// The format new values are written in.
    pub const fn format(&self) -> Format {
        self.format
    }

    /// The compression setting, if any.
    pub const fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// Serializes `value` into a framed byte buffer, sealed in an encrypted envelope when the codec has a
    /// keyring.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError> {
        let framed = self.frame(value)?;
        match &self.encryption {
            Some(keyring) => encryption::seal(keyring, self.format, &framed).map(Bytes::from),
            None => Ok(Bytes::from(framed)),
        }
    }

    /// Serializes `value` behind the plaintext header, compressed if the codec says so.
    fn frame<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let body = match self.format {
            Format::Json => serde_json::to_vec(value).map_err(|e| encode_err(Format::Json, e))?,
            Format::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| encode_err(Format::MessagePack, e))?,
        };
        let format_byte = match self.format {
            Format::Json => FORMAT_JSON,
            Format::MessagePack => FORMAT_MSGPACK,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        match self.compression {
            Some(c) if body.len() >= c.threshold => {
                out.extend_from_slice(&[MAGIC, HEADER_VERSION, format_byte, COMPRESSION_ZLIB]);
                let mut enc = ZlibEncoder::new(out, Level::new(c.level.min(9)));
                enc.write_all(&body).map_err(|e| encode_err(self.format, e))?;
                out = enc.finish().map_err(|e| encode_err(self.format, e))?;
            }
            _ => {
                out.extend_from_slice(&[MAGIC, HEADER_VERSION, format_byte, COMPRESSION_NONE]);
                out.extend_from_slice(&body);
            }
        }
        Ok(out)
    }

    /// Deserializes a framed byte buffer made by any [`Codec`], whatever its format or compression. An
    /// encrypted value is opened with the keyring first ([`CodecError::NoKeyring`] without one); a plaintext
    /// value read by a codec with a keyring that refuses plaintext is [`CodecError::PlaintextRefused`].
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let [magic, version, ..] = bytes else {
            return Err(CodecError::UnknownFormat);
        };
        if *magic != MAGIC {
            return Err(CodecError::UnknownFormat);
        }
        match (*version, self.encryption.as_deref()) {
            (ENCRYPTED_HEADER_VERSION, None) => Err(CodecError::NoKeyring),
            (ENCRYPTED_HEADER_VERSION, Some(keyring)) => {
                let framed = encryption::open(keyring, bytes, self.max_decoded_bytes)?;
                if framed.get(1) != Some(&HEADER_VERSION) {
                    // An envelope inside an envelope is never written: refuse it rather than recurse.
                    return Err(CodecError::Unsupported("nested encryption envelope".to_owned()));
                }
                self.decode_framed(&framed)
            }
            (HEADER_VERSION, Some(keyring)) if !keyring.allows_plaintext() => Err(CodecError::PlaintextRefused),
            _ => self.decode_framed(bytes),
        }
    }

    /// Deserializes a plaintext framed value.
    fn decode_framed<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let [magic, version, format_byte, compression, ..] = bytes else {
            return Err(CodecError::UnknownFormat);
        };
        if *magic != MAGIC {
            return Err(CodecError::UnknownFormat);
        }
        if *version != HEADER_VERSION {
            return Err(CodecError::Unsupported(format!("header version {version}")));
        }
        let format = match *format_byte {
            FORMAT_JSON => Format::Json,
            FORMAT_MSGPACK => Format::MessagePack,
            other => return Err(CodecError::Unsupported(format!("format byte {other:#04x}"))),
        };
        let payload = &bytes[HEADER_LEN..];
        let inflated;
        let body: &[u8] = match *compression {
            COMPRESSION_NONE => {
                if payload.len() > self.max_decoded_bytes {
                    return Err(CodecError::TooLarge { max: self.max_decoded_bytes });
                }
                payload
            }
            COMPRESSION_ZLIB => {
                inflated = self.inflate(payload)?;
                &inflated
            }
            other => return Err(CodecError::Unsupported(format!("compression byte {other:#04x}"))),
        };
        match format {
            Format::Json => serde_json::from_slice(body).map_err(|e| decode_err(format, e)),
            Format::MessagePack => rmp_serde::from_slice(body).map_err(|e| decode_err(format, e)),
        }
    }

    fn inflate(&self, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
        let limit = self.max_decoded_bytes as u64;
        let mut out = Vec::new();
        ZlibDecoder::new(payload)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| CodecError::Decompress(e.to_string()))?;
        if out.len() as u64 > limit {
            return Err(CodecError::TooLarge { max: self.max_decoded_bytes });
        }
        Ok(out)
    }
}

fn encode_err(format: Format, e: impl std::fmt::Display) -> CodecError {
    CodecError::Encode { format, message: e.to_string() }
}

fn decode_err(format: Format, e: impl std::fmt::Display) -> CodecError {
    CodecError::Decode { format, message: e.to_string() }
}

#[cfg(test)]
mod encryption_tests;
#[cfg(test)]
mod keyring_tests;
#[cfg(test)]
mod tests;
