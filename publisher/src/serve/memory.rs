//! Handing memory freed by a build back to the system.
//!
//! A build allocates far more than the zone it produces (parsed mappings,
//! signing inputs, the previous zone's signature index), on several
//! threads. glibc's allocator keeps what those threads freed in per-thread
//! arenas, so a server that just built a million-record zone keeps
//! hundreds of megabytes it will never use again. After a build, the
//! server asks the allocator to return free pages to the kernel.

/// Returns the allocator's free memory to the operating system, where the
/// allocator supports it (glibc on Linux); elsewhere does nothing.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is
    // safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
