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
//! throughput. The figures are measurements, not assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

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
        let label = if *size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") };
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
            plain * 1e6,
            sealed * 1e6,
            sealed / plain,
            extra * 1e6,
            // Each round trip seals and opens the value once: twice its bytes through the cipher.
            2.0 * *size as f64 / extra / 1e6,
        );
    }
}
