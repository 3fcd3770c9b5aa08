//! The C allocator's settings, for a process that keeps a small footprint for years.
//!
//! glibc's malloc gives threads arenas of their own (up to eight per core) and keeps what is
//! freed in each for reuse. The pipeline allocates a page's records on one thread and frees
//! them on another, and a replay's pages of several MiB pass through every thread, so each
//! arena ends up holding a page's worth: measured on a 1M-record replay, peak RSS fell from
//! about 64 to 50 MiB with two arenas and the threshold below together. A fixed mmap threshold keeps page-sized buffers out of
//! the arenas altogether (glibc otherwise raises it after the first large free, and such
//! buffers stay resident once freed). Other C libraries (musl) keep their own policies; there
//! these calls are not made.
//!
//! Invariant: a leaf; imports nothing of ours.
#![expect(
    unsafe_code,
    reason = "mallopt and malloc_trim are C calls without a safe wrapper"
)]

/// Arenas for the whole process, shared by its threads. With one, the fetch, normalize and
/// deliver threads queue on its lock (measured: about 20% more CPU on a replay).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Allocations from this size up get pages of their own, returned to the system when freed:
/// a page's body (about 3 MiB) and a stdout piece are above it. 256 KiB also moved a page's
/// event vectors (about 1 MiB) out of the arenas, for a MiB or two less peak memory and about
/// 15% more CPU spent zeroing fresh pages, so the line is drawn above them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;

/// Sets the allocator's limits. Call it first in `main`, before any thread starts: glibc
/// reads `M_ARENA_MAX` when a thread first allocates.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; called before other threads exist,
    // so no allocation runs concurrently. A refused value (return 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Returns the free pages inside the arenas to the system: called when a daemon that read
/// records goes idle, so what a catch-up needed does not stay resident until the next burst.
pub fn release_unused() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes malloc's own locks and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
