//! Giving freed memory back to the OS after a config change. A large
//! config's old version, the snapshot it came in and the compile's scratch
//! are tens of MB freed at once; an allocator with thread-local heaps
//! (mimalloc) returns them in its own time: when the thread that freed them
//! next allocates, or exits (a blocking-pool thread, 10 s later). The
//! binary, which picks the allocator, says how to release; the node says
//! when.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Sets how to give the calling thread's freed memory back to the OS (once;
/// later calls are ignored). Without it, [`release`] does nothing.
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Gives the calling thread's freed memory back to the OS, if the binary
/// said how.
pub fn release() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}
