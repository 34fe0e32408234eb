//! The cost of encryption at rest: `encode` then `decode` of one value through the plain JSON codec and through
//! the same codec encrypting with XChaCha20-Poly1305 ([`Codec::with_encryption`]), side by side in one run, for
//! values of 64 B, 1 KiB and 64 KiB (a JSON string of that many ASCII bytes). Run:
//!
//! ```sh
//! cargo bench -p cpc-ports --bench codec_encryption
//! ```
//!
//! Each figure is the best of [`ROUNDS`] rounds of [`RUN`] per row, the rows rotating so none always runs
//! first. Prints a markdown table: size, plain µs, encrypted µs, ratio, the encryption's extra µs and its
//! throughput. A second table times the bare ciphers on the same sizes, seal then open with a fixed key and no
//! codec: XChaCha20-Poly1305 (what the codec uses) and AES-256-GCM (RustCrypto `aes-gcm`, AES-NI when the CPU
//! has it), so the codec's extra cost can be told from the cipher's. The figures are measurements, not
//! assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit, Nonce};
use cpc_ports::{Codec, KeyId, Keyring};

/// Rounds per figure; the best is kept.
const ROUNDS: usize = 5;
/// Counted time per row and round.
const RUN: Duration = Duration::from_millis(500);
/// The value sizes, in bytes.
const SIZES: [usize; 3] = [64, 1024, 64 * 1024];

/// Seconds per `encode` + `decode` of `value` through `codec`, averaged over [`RUN`].
fn seconds_per_round_trip(codec: &Codec, value: &String) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < RUN {
        for _ in 0..16 {
            let bytes = codec.encode(black_box(value)).unwrap();
            let back: String = codec.decode(black_box(&bytes)).unwrap();
            black_box(back);
        }
        n += 16;
    }
    started.elapsed().as_secs_f64() / n as f64
}

/// Seconds per seal + open of `size` bytes by `aead` (a 24- or 12-byte nonce, per the cipher), over [`RUN`].
fn seconds_per_seal_open<A: AeadInOut>(aead: &A, size: usize) -> f64 {
    let nonce = Nonce::<A>::default();
    let mut buf = vec![b'x'; size];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < RUN {
        for _ in 0..16 {
            let tag = aead.encrypt_inout_detached(&nonce, b"ad", black_box(buf.as_mut_slice()).into()).unwrap();
            aead.decrypt_inout_detached(&nonce, b"ad", buf.as_mut_slice().into(), &tag).unwrap();
        }
        n += 16;
    }
    started.elapsed().as_secs_f64() / n as f64
}

/// The bare ciphers' table: best of [`ROUNDS`] per size and cipher, rotating.
fn bare_ciphers() {
    let key = [7u8; 32];
    let xchacha = XChaCha20Poly1305::new(&key.into());
    let aes = Aes256Gcm::new(&key.into());
    let mut best = [[f64::INFINITY; 2]; SIZES.len()];
    for round in 0..ROUNDS {
        for i in 0..SIZES.len() * 2 {
            let row = (i + round) % (SIZES.len() * 2);
            let (size, cipher) = (row / 2, row % 2);
            let secs = if cipher == 0 {
                seconds_per_seal_open(&xchacha, SIZES[size])
            } else {
                seconds_per_seal_open(&aes, SIZES[size])
            };
            best[size][cipher] = best[size][cipher].min(secs);
        }
    }
    println!();
    println!("| value | XChaCha20-Poly1305 seal+open, µs | AES-256-GCM seal+open, µs | XChaCha / AES-GCM |");
    println!("|---:|---:|---:|---:|");
    for (size, [xchacha, aes]) in SIZES.iter().zip(best) {
        println!("| {} | {:.2} | {:.2} | {:.2} |", label(*size), xchacha * 1e6, aes * 1e6, xchacha / aes);
    }
}

/// `64 B`, `1 KiB`...
fn label(size: usize) -> String {
    if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let keyring = Keyring::new([(KeyId::new("bench").unwrap(), [7u8; 32])]).unwrap();
    let codecs = [Codec::json(), Codec::json().with_encryption(keyring)];
    let values: Vec<String> = SIZES.iter().map(|&size| "x".repeat(size)).collect();
    // best[size][codec], in seconds.
    let mut best = [[f64::INFINITY; 2]; SIZES.len()];
    for round in 0..ROUNDS {
        let rows = SIZES.len() * codecs.len();
        for i in 0..rows {
            let row = (i + round) % rows;
            let (size, codec) = (row / codecs.len(), row % codecs.len());
            let secs = seconds_per_round_trip(&codecs[codec], &values[size]);
            best[size][codec] = best[size][codec].min(secs);
        }
    }
    println!("| value | plain encode+decode, µs | encrypted, µs | encrypted / plain | extra, µs | extra, MB/s |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (size, [plain, sealed]) in SIZES.iter().zip(best) {
        let extra = sealed - plain;
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
            label(*size),
            plain * 1e6,
            sealed * 1e6,
            sealed / plain,
            extra * 1e6,
            // Each round trip seals and opens the value once: twice its bytes through the cipher.
            2.0 * *size as f64 / extra / 1e6,
        );
    }
    bare_ciphers();
}
