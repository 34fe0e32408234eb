//! Capturing `tracing` output in a test: every line, at every level, written to a buffer the test reads.
//! Include with `#[path = "common/logs.rs"] mod logs;` (it needs no feature).

use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt;

/// The captured log text so far.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends this thread's `tracing` output (no filter: every level) to a [`Capture`] until the guard is dropped.
pub fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let captured = Capture::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || writer.clone()));
    (captured, tracing::subscriber::set_default(subscriber))
}
