//! The framing codec: formats, compression, foreign bytes, bombs.

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
