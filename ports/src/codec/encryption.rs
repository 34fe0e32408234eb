//! The encrypted envelope: XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) around a framed plaintext value.
//!
//! | bytes | what |
//! |---|---|
//! | 4 | header: [`MAGIC`], [`ENCRYPTED_HEADER_VERSION`] (2), the algorithm (`b'x'`, XChaCha20-Poly1305), `0` |
//! | 1 | the key id's length, 1 to 64 |
//! | 1 to 64 | the key id ([`KeyId`], ASCII) |
//! | 24 | the nonce, random for every value (the OS generator, through `getrandom`) |
//! | n + 16 | the ciphertext of the framed plaintext value (its own 4-byte header, then the body), then the tag |
//!
//! The header and the key id are the associated data: authenticated, not encrypted, so a value cannot be made
//! to name another key or pass for another layout without failing to decrypt. A 24-byte random nonce makes
//! reuse under one key negligible however many values are written (XChaCha's reason for being), so keys need
//! no per-writer counter.
//!
//! Readers older than encryption see header version 2 and refuse the value as
//! [`CodecError::Unsupported`]; readers with encryption tell the two apart by that byte.
//!
//! Opening never panics: a value too short for its envelope, naming a key the keyring lacks, or altered in any
//! byte after the key id is an error ([`CodecError::Decrypt`] or [`CodecError::UnknownKey`], both naming the
//! key id; [`CodecError::UnknownFormat`] when not even the key id can be read).

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};

use super::{CodecError, ENCRYPTED_HEADER_VERSION, Format, HEADER_LEN, KeyId, Keyring, MAGIC};

/// The algorithm byte of XChaCha20-Poly1305 envelopes.
const ALGORITHM_XCHACHA20POLY1305: u8 = b'x';
/// The length of the nonce.
pub const NONCE_LEN: usize = 24;
/// The length of the authentication tag.
pub const TAG_LEN: usize = 16;

/// Seals `framed` (a plaintext framed value) under `keyring`'s primary key; `format` names the value's format in
/// an error (the OS random generator failing).
pub(super) fn seal(keyring: &Keyring, format: Format, framed: &[u8]) -> Result<Vec<u8>, CodecError> {
    let (id, key) = keyring.primary_key();
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| CodecError::Encode { format, message: format!("the OS random generator failed: {e}") })?;
    let prefix = HEADER_LEN + 1 + id.as_str().len();
    let mut out = Vec::with_capacity(prefix + NONCE_LEN + framed.len() + TAG_LEN);
    out.extend_from_slice(&[MAGIC, ENCRYPTED_HEADER_VERSION, ALGORITHM_XCHACHA20POLY1305, 0]);
    out.push(id_len(id));
    out.extend_from_slice(id.as_str().as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(framed);
    let (head, body) = out.split_at_mut(prefix + NONCE_LEN);
    let tag = cipher(key)
        .encrypt_inout_detached(<&XNonce>::from(&nonce), &head[..prefix], body.into())
        .map_err(|_| CodecError::Encode { format, message: "the value is too long to encrypt".to_owned() })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens an envelope made by [`seal`] with the key it names, refusing (as [`CodecError::TooLarge`]) one whose
/// plaintext would exceed `max_decoded_bytes` plus a header. Returns the framed plaintext value.
pub(super) fn open(keyring: &Keyring, bytes: &[u8], max_decoded_bytes: usize) -> Result<Vec<u8>, CodecError> {
    let [_, _, algorithm, reserved, id_len, rest @ ..] = bytes else {
        return Err(CodecError::UnknownFormat);
    };
    if *algorithm != ALGORITHM_XCHACHA20POLY1305 {
        return Err(CodecError::Unsupported(format!("encryption algorithm byte {algorithm:#04x}")));
    }
    if *reserved != 0 {
        return Err(CodecError::Unsupported(format!("encryption header byte {reserved:#04x}")));
    }
    let (id, rest) = rest.split_at_checked(usize::from(*id_len)).ok_or(CodecError::UnknownFormat)?;
    let id = std::str::from_utf8(id).ok().and_then(|id| KeyId::new(id).ok()).ok_or(CodecError::UnknownFormat)?;
    let key_id = || id.as_str().to_owned();
    let key = keyring.key(id.as_str()).ok_or_else(|| CodecError::UnknownKey { key_id: key_id() })?;
    let (nonce, rest) =
        rest.split_first_chunk::<NONCE_LEN>().ok_or_else(|| CodecError::Decrypt { key_id: key_id() })?;
    let (ciphertext, tag) =
        rest.split_last_chunk::<TAG_LEN>().ok_or_else(|| CodecError::Decrypt { key_id: key_id() })?;
    if ciphertext.len() > max_decoded_bytes.saturating_add(HEADER_LEN) {
        return Err(CodecError::TooLarge { max: max_decoded_bytes });
    }
    let associated = &bytes[..HEADER_LEN + 1 + usize::from(*id_len)];
    let mut plain = ciphertext.to_vec();
    cipher(key)
        .decrypt_inout_detached(<&XNonce>::from(nonce), associated, plain.as_mut_slice().into(), <&Tag>::from(tag))
        .map_err(|_| CodecError::Decrypt { key_id: key_id() })?;
    Ok(plain)
}

fn cipher(key: &[u8; super::KEY_LEN]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(<&Key>::from(key))
}

/// The length byte of a key id: ids are at most 64 bytes ([`KeyId::new`]).
fn id_len(id: &KeyId) -> u8 {
    u8::try_from(id.as_str().len()).unwrap_or(u8::MAX)
}
