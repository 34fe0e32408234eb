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

// The Rust blocks of README.md and of every page under docs/ are compiled and run as doc tests of this crate,
// one struct per file.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/jobs.md")]
pub struct JobsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/own-tables.md")]
pub struct OwnTablesDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/pools.md")]
pub struct PoolsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/ports.md")]
pub struct PortsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/redlock.md")]
pub struct RedlockDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/replicas.md")]
pub struct ReplicasDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/repositories.md")]
pub struct RepositoriesDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/testing.md")]
pub struct TestingDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/guide/tower.md")]
pub struct TowerDoctests;
