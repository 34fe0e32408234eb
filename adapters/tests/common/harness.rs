//! A port behind `Arc<dyn Port>` that keeps what it runs on alive, for contract suites run on the trait object.

use std::ops::Deref;
use std::sync::Arc;

/// `Arc<dyn Port>` with a guard (a test database, a temporary directory) dropped after it; derefs to the port.
pub struct DynHarness<D: ?Sized, G> {
    port: Arc<D>,
    _guard: G,
}

impl<D: ?Sized, G> DynHarness<D, G> {
    /// `port`, kept next to `guard`.
    pub fn new(port: Arc<D>, guard: G) -> Self {
        Self { port, _guard: guard }
    }
}

impl<D: ?Sized, G> Deref for DynHarness<D, G> {
    type Target = D;
    fn deref(&self) -> &D {
        &self.port
    }
}
