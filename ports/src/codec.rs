//! Value codecs: JSON or MessagePack, optionally deflate-compressed above a size threshold, always behind a
//! 4-byte header that marks the format. Reading checks the header first, so bytes written by another program (or
//! garbled in transit) come back as a [`CodecError`], never as a panic or a wrong value. The header also makes
//! every value self-describing: a reader configured for JSON still reads MessagePack values, and the other way
//! round, so the format can change without flushing a cache.
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

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression as Level;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first byte of every encoded value.
pub const MAGIC: u8 = 0xCB;
/// The header layout version this code writes and reads.
pub const HEADER_VERSION: u8 = 1;
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
}

/// How values become bytes and back. Cheap to copy; every key-value port exposes the one it was configured
/// with, and the typed extension traits use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Codec {
    format: Format,
    compression: Option<Compression>,
    max_decoded_bytes: usize,
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
        Self { format: Format::Json, compression: None, max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES }
    }

    /// MessagePack, uncompressed.
    pub const fn msgpack() -> Self {
        Self { format: Format::MessagePack, compression: None, max_decoded_bytes: Self::DEFAULT_MAX_DECODED_BYTES }
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

    /// The format new values are written in.
    pub const fn format(&self) -> Format {
        self.format
    }

    /// The compression setting, if any.
    pub const fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// Serializes `value` into a framed byte buffer.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError> {
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
        Ok(Bytes::from(out))
    }

    /// Deserializes a framed byte buffer made by any [`Codec`], whatever its format or compression.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
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
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        n: u32,
        tags: Vec<String>,
    }

    fn sample() -> Sample {
        Sample { name: "ünï".into(), n: 7, tags: vec!["x".repeat(300); 10] }
    }

    fn all_codecs() -> Vec<Codec> {
        vec![
            Codec::json(),
            Codec::msgpack(),
            Codec::json().with_compression(Compression::above(64)),
            Codec::msgpack().with_compression(Compression::above(0)),
        ]
    }

    #[test]
    fn every_codec_round_trips_and_reads_every_other() {
        for writer in all_codecs() {
            let bytes = writer.encode(&sample()).unwrap();
            for reader in all_codecs() {
                assert_eq!(reader.decode::<Sample>(&bytes).unwrap(), sample(), "{writer:?} -> {reader:?}");
            }
        }
    }

    #[test]
    fn compression_applies_only_above_the_threshold() {
        let c = Codec::json().with_compression(Compression::above(1000));
        assert_eq!(c.encode(&"short").unwrap()[3], COMPRESSION_NONE);
        let big = c.encode(&sample()).unwrap();
        assert_eq!(big[3], COMPRESSION_ZLIB);
        assert!(big.len() < Codec::json().encode(&sample()).unwrap().len() / 4);
    }

    #[test]
    fn foreign_and_garbled_bytes_are_typed_errors() {
        let c = Codec::json();
        assert_eq!(c.decode::<Sample>(b"").unwrap_err(), CodecError::UnknownFormat);
        assert_eq!(c.decode::<Sample>(b"{\"name\":1}").unwrap_err(), CodecError::UnknownFormat);
        assert!(matches!(c.decode::<Sample>(&[MAGIC, 9, b'j', 0]), Err(CodecError::Unsupported(_))));
        assert!(matches!(c.decode::<Sample>(&[MAGIC, 1, b'x', 0]), Err(CodecError::Unsupported(_))));
        assert!(matches!(c.decode::<Sample>(&[MAGIC, 1, b'j', b'z', 1, 2, 3]), Err(CodecError::Decompress(_))));
        let mut truncated = c.encode(&sample()).unwrap().to_vec();
        truncated.truncate(20);
        assert!(matches!(c.decode::<Sample>(&truncated), Err(CodecError::Decode { format: Format::Json, .. })));
        let wrong_type = c.encode(&42u8).unwrap();
        assert!(matches!(c.decode::<Sample>(&wrong_type), Err(CodecError::Decode { .. })));
    }

    #[test]
    fn decompression_bombs_are_refused() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let bomb = Codec::msgpack().with_compression(Compression::above(0)).encode(&zeros).unwrap();
        assert!(bomb.len() < 64 * 1024);
        let unlimited = Codec::json().with_compression(Compression::above(0)).with_max_decoded_bytes(usize::MAX);
        let bytes = unlimited.encode(&vec![7_u32; 100]).unwrap();
        assert_eq!(unlimited.decode::<Vec<u32>>(&bytes).unwrap(), vec![7; 100], "no overflow at usize::MAX");
        let strict = Codec::msgpack().with_max_decoded_bytes(1024 * 1024);
        assert_eq!(strict.decode::<Vec<u8>>(&bomb).unwrap_err(), CodecError::TooLarge { max: 1024 * 1024 });
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Codec::json().decode::<Sample>(&bytes);
            let _ = Codec::msgpack().decode::<serde_json::Value>(&bytes);
        }

        #[test]
        fn framed_arbitrary_payloads_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512), f in 0..2u8, z in 0..2u8) {
            let mut bytes = vec![MAGIC, HEADER_VERSION, if f == 0 { FORMAT_JSON } else { FORMAT_MSGPACK }, if z == 0 { COMPRESSION_NONE } else { COMPRESSION_ZLIB }];
            bytes.extend(body);
            let _ = Codec::json().decode::<Sample>(&bytes);
            let _ = Codec::json().decode::<serde_json::Value>(&bytes);
        }
    }
}
