//! Free TCP ports of 127.0.0.1 for the private servers, never the same one twice in a process.
//!
//! A port is found by binding port 0 and closing the listener; the server binds it a moment later. The kernel
//! often gives a just-closed port out again, so servers started at once (a Redlock set, a cluster) were handed
//! one port twice (seen: a Redlock test refused a set that listed one server twice).

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// Every port handed out in this process.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(Mutex::default)
}

/// A port of 127.0.0.1 free now, for which `also_free(port)` holds (other addresses or ports the server will
/// bind), and not handed out before in this process.
///
/// # Panics
/// If none is found in 200 tries.
pub(crate) fn free_port(also_free: impl Fn(u16) -> bool) -> u16 {
    // Ports tried and refused stay bound until the search ends, or the kernel would offer the same one again.
    let mut refused = Vec::new();
    for _ in 0..200 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else { continue };
        let Ok(port) = listener.local_addr().map(|a| a.port()) else { continue };
        let mut taken = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if !taken.contains(&port) && also_free(port) {
            taken.insert(port);
            return port;
        }
        refused.push(listener);
    }
    panic!("found no free TCP port on 127.0.0.1 after 200 tries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice_and_honour_the_condition() {
        // Linux hands out odd ports for bind(0): the condition refuses about half of them.
        let ports: Vec<u16> = (0..50).map(|_| free_port(|p| p % 4 != 1)).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|p| p % 4 != 1), "{ports:?}");
    }
}
