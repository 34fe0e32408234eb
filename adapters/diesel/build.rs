//! Rebuilds the crate when a migration is added under `migrations/`: `embed_migrations!` reads the directories at
//! compile time, and cargo tracks only the files it was told about, so a new migration folder would otherwise be
//! missing from the embedded set until something else changed.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
