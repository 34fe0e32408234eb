//! The encrypted envelope: round trips, rotation, unknown keys, tampering, truncation, plaintext, no keyring.

use proptest::prelude::*;

use super::encryption::{NONCE_LEN, TAG_LEN};
use super::*;

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn keyring(keys: &[(&str, u8)]) -> Keyring {
    Keyring::new(keys.iter().map(|(name, byte)| (id(name), [*byte; KEY_LEN]))).unwrap()
}

fn sealed(keys: &[(&str, u8)]) -> Codec {
    Codec::json().with_encryption(keyring(keys))
}

const SECRET: &str = "a secret worth keeping: 4111-1111-1111-1111";

/// The key id an envelope names.
fn envelope_key_id(bytes: &[u8]) -> &str {
    std::str::from_utf8(&bytes[5..5 + usize::from(bytes[4])]).unwrap()
}

#[test]
fn every_codec_round_trips_encrypted_and_the_bytes_hide_the_value() {
    let keys = Arc::new(keyring(&[("k1", 1)]));
    let codecs = [
        Codec::json(),
        Codec::msgpack(),
        Codec::json().with_compression(Compression::above(0)),
        Codec::msgpack().with_compression(Compression::above(16)),
    ];
    for plain in codecs {
        let codec = plain.clone().with_encryption(keys.clone());
        for value in [String::new(), SECRET.to_owned(), SECRET.repeat(500)] {
            let bytes = codec.encode(&value).unwrap();
            assert_eq!(&bytes[..2], &[MAGIC, ENCRYPTED_HEADER_VERSION], "{codec:?}");
            assert_eq!(codec.decode::<String>(&bytes).unwrap(), value, "{codec:?}");
            assert!(!bytes.windows(6).any(|w| w == b"secret"), "{codec:?} leaks the plaintext");
            let plain_len = plain.encode(&value).unwrap().len();
            assert_eq!(bytes.len(), plain_len + 4 + 1 + 2 + NONCE_LEN + TAG_LEN, "the envelope's overhead is fixed");
        }
    }
}

#[test]
fn each_encoding_takes_a_fresh_nonce() {
    let codec = sealed(&[("k1", 1)]);
    let a = codec.encode(&SECRET).unwrap();
    let b = codec.encode(&SECRET).unwrap();
    assert_ne!(a, b, "the same value twice must not give the same bytes");
    assert_ne!(a[7..7 + NONCE_LEN], b[7..7 + NONCE_LEN]);
}

#[test]
fn rotation_reads_old_keys_and_writes_with_the_newest() {
    let old = sealed(&[("2024", 1)]);
    let rotated = sealed(&[("2024", 1), ("2025", 2)]);
    let before = old.encode(&SECRET).unwrap();
    assert_eq!(envelope_key_id(&before), "2024");
    assert_eq!(rotated.decode::<String>(&before).unwrap(), SECRET, "a value sealed with an older key is read");
    let after = rotated.encode(&SECRET).unwrap();
    assert_eq!(envelope_key_id(&after), "2025", "new values use the last listed key");
    assert_eq!(rotated.decode::<String>(&after).unwrap(), SECRET);
    assert_eq!(old.decode::<String>(&after).unwrap_err(), CodecError::UnknownKey { key_id: "2025".to_owned() });

    let pinned = keyring(&[("2024", 1), ("2025", 2)]).with_primary(&id("2024")).unwrap();
    let pinned = Codec::json().with_encryption(pinned);
    assert_eq!(envelope_key_id(&pinned.encode(&SECRET).unwrap()), "2024", "an explicit primary wins");
}

#[test]
fn a_key_removed_from_the_keyring_is_an_error_naming_it() {
    let bytes = sealed(&[("retired", 1)]).encode(&SECRET).unwrap();
    let err = sealed(&[("current", 2)]).decode::<String>(&bytes).unwrap_err();
    assert_eq!(err, CodecError::UnknownKey { key_id: "retired".to_owned() });
    assert!(err.to_string().contains("\"retired\""), "{err}");
}

#[test]
fn another_key_under_the_same_id_does_not_decrypt() {
    let bytes = sealed(&[("k1", 1)]).encode(&SECRET).unwrap();
    let err = sealed(&[("k1", 9)]).decode::<String>(&bytes).unwrap_err();
    assert_eq!(err, CodecError::Decrypt { key_id: "k1".to_owned() });
    assert!(err.to_string().contains("\"k1\""), "{err}");
}

#[test]
fn tampering_with_any_byte_is_an_error() {
    let codec = sealed(&[("k1", 1), ("k2", 2)]);
    let bytes = codec.encode(&SECRET).unwrap();
    let after_id = 5 + usize::from(bytes[4]);
    for i in 0..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut tampered = bytes.to_vec();
            tampered[i] ^= flip;
            let err = codec.decode::<String>(&tampered).unwrap_err();
            if i >= after_id {
                assert_eq!(err, CodecError::Decrypt { key_id: "k2".to_owned() }, "byte {i} ^ {flip:#x}");
            }
        }
    }
    // An id changed to another listed key still fails: the id is authenticated.
    let mut renamed = bytes.to_vec();
    renamed[6] = b'1';
    assert_eq!(codec.decode::<String>(&renamed).unwrap_err(), CodecError::Decrypt { key_id: "k1".to_owned() });
}

#[test]
fn truncating_at_any_length_is_an_error() {
    let codec = sealed(&[("k1", 1)]);
    let bytes = codec.encode(&SECRET).unwrap();
    for len in 0..bytes.len() {
        let err = codec.decode::<String>(&bytes[..len]).unwrap_err();
        if len >= 7 {
            assert_eq!(err, CodecError::Decrypt { key_id: "k1".to_owned() }, "cut at {len}");
        }
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(codec.decode::<String>(&longer).unwrap_err(), CodecError::Decrypt { key_id: "k1".to_owned() });
}

#[test]
fn plaintext_values_are_read_only_when_the_keyring_allows_them() {
    let before = Codec::json().encode(&SECRET).unwrap();
    let strict = sealed(&[("k1", 1)]);
    assert!(!strict.keyring().unwrap().allows_plaintext(), "refusing plaintext is the default");
    assert_eq!(strict.decode::<String>(&before).unwrap_err(), CodecError::PlaintextRefused);
    let lenient = Codec::json().with_encryption(keyring(&[("k1", 1)]).allow_plaintext(true));
    assert_eq!(lenient.decode::<String>(&before).unwrap(), SECRET);
    let after = lenient.encode(&SECRET).unwrap();
    assert_eq!(after[1], ENCRYPTED_HEADER_VERSION, "allowing plaintext reads never writes plaintext");
    assert_eq!(lenient.decode::<u32>(&Codec::msgpack().encode(&7u32).unwrap()).unwrap(), 7);
}

#[test]
fn an_encrypted_value_needs_a_keyring_and_older_readers_refuse_it() {
    let bytes = sealed(&[("k1", 1)]).encode(&SECRET).unwrap();
    assert_eq!(Codec::json().decode::<String>(&bytes).unwrap_err(), CodecError::NoKeyring);
    assert_eq!(Codec::msgpack().decode::<String>(&bytes).unwrap_err(), CodecError::NoKeyring);
    // A reader from before encryption only knows header version 1: it refuses version 2 as unsupported.
    let old_reader = Codec::json().decode_framed::<String>(&bytes).unwrap_err();
    assert_eq!(old_reader, CodecError::Unsupported("header version 2".to_owned()));
}

#[test]
fn foreign_envelopes_are_typed_errors() {
    let codec = sealed(&[("k1", 1)]);
    let v2 = |rest: &[u8]| [&[MAGIC, ENCRYPTED_HEADER_VERSION], rest].concat();
    assert!(matches!(codec.decode::<String>(&v2(b"a")), Err(CodecError::UnknownFormat)));
    assert!(matches!(codec.decode::<String>(&v2(b"q\0\x02k1")), Err(CodecError::Unsupported(_))));
    assert!(matches!(codec.decode::<String>(&v2(b"x\x07\x02k1")), Err(CodecError::Unsupported(_))));
    assert_eq!(codec.decode::<String>(&v2(b"x\0\x00")).unwrap_err(), CodecError::UnknownFormat, "empty id");
    assert_eq!(codec.decode::<String>(&v2(b"x\0\x02k:")).unwrap_err(), CodecError::UnknownFormat, "bad id");
    assert_eq!(codec.decode::<String>(&v2(b"x\0\x09k1")).unwrap_err(), CodecError::UnknownFormat, "short id");
    // An envelope inside an envelope is never written, and refused.
    let inner = codec.encode(&SECRET).unwrap();
    let (_, key) = codec.keyring().unwrap().primary_key();
    let nested = encryption::seal(codec.keyring().unwrap(), Format::Json, &inner).unwrap();
    assert!(key.len() == KEY_LEN && matches!(codec.decode::<String>(&nested), Err(CodecError::Unsupported(_))));
}

#[test]
fn an_oversized_envelope_is_refused_before_decrypting() {
    let big = sealed(&[("k1", 1)]).encode(&vec![7u8; 4096]).unwrap();
    let strict = Codec::json().with_encryption(keyring(&[("k1", 1)])).with_max_decoded_bytes(1024);
    assert_eq!(strict.decode::<Vec<u8>>(&big).unwrap_err(), CodecError::TooLarge { max: 1024 });
}

#[test]
fn codecs_compare_by_settings_and_keyring_and_print_no_key() {
    let a = sealed(&[("k1", 1)]);
    assert_eq!(a, a.clone());
    assert_eq!(a, sealed(&[("k1", 1)]));
    assert_ne!(a, sealed(&[("k1", 2)]), "another key under the same id is another keyring");
    assert_ne!(a, Codec::json());
    let debug = format!("{a:?}");
    assert!(debug.contains("key_ids: [\"k1\"]"), "{debug}");
    assert!(!debug.contains("[1, 1") && !debug.contains("AQEB"), "{debug}");
}

proptest! {
    #[test]
    fn arbitrary_bytes_behind_an_encrypted_header_never_panic(rest in proptest::collection::vec(any::<u8>(), 0..256)) {
        let codec = sealed(&[("k1", 1)]);
        let bytes = [&[MAGIC, ENCRYPTED_HEADER_VERSION, b'x', 0, 2, b'k', b'1'][..], &rest].concat();
        prop_assert!(codec.decode::<serde_json::Value>(&bytes).is_err());
        let _ = codec.decode::<String>(&[&[MAGIC, ENCRYPTED_HEADER_VERSION][..], &rest].concat());
    }

    #[test]
    fn a_mutated_envelope_never_decodes_nor_panics(
        value in ".{0,64}",
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let codec = sealed(&[("k1", 1), ("k2", 2)]);
        let bytes = codec.encode(&value).unwrap().to_vec();
        let mut mutated = bytes.clone();
        for (at, flip) in &edits {
            mutated[at.index(bytes.len())] ^= flip;
        }
        prop_assert!(codec.decode::<String>(&bytes[..cut.index(bytes.len())]).is_err());
        prop_assume!(mutated != bytes, "two edits of one byte cancelled out");
        prop_assert!(codec.decode::<String>(&mutated).is_err());
    }
}
