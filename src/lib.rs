//! # cpc-data
//!
//! The facade of the CPC data toolkit. Apps depend on [`ports`] and [`domain`] only, and wire an adapter from
//! [`adapters`] once, at start-up, in their composition root. `use cpc_data::prelude::*;` brings the ports,
//! their extension traits, keys, errors, the domain types and the composition root into scope ([`prelude`]).
//! The picture: `docs/ARCHITECTURE.md`.

pub use cpc_adapters as adapters;
pub use cpc_domain as domain;
pub use cpc_ports as ports;

pub mod prelude;
#[cfg(feature = "wiring")]
pub mod wiring;

// The README's Rust snippets are compiled and run as doc tests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
