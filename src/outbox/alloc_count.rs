//! Test builds only: a global allocator that counts, per thread, the allocations made while
//! a closure runs, so that unit tests can prove a hot path allocates nothing (issue 14: a
//! keyed replacement, a small missed-frame notice). Counting is per thread, so the unit
//! tests running beside one on other threads do not disturb its count.
//!
//! This is the crate's one piece of unsafe code, and it is compiled into its own test
//! binary alone (see `lib.rs`): implementing `GlobalAlloc` is unsafe by definition; every
//! call is passed on to the system allocator unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations on this thread while counting, or `None` when not counting. A const
    /// initialiser: reading it never allocates (which, inside the allocator, would recurse).
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

fn count_one() {
    // `try_with`: a thread being torn down still allocates, but counts nothing.
    let _ = COUNT.try_with(|count| {
        if let Some(n) = count.get() {
            count.set(Some(n + 1));
        }
    });
}

// SAFETY: every method passes its arguments unchanged to `System`, which upholds
// `GlobalAlloc`'s contract; counting touches only a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's guarantees about `layout` are `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by `System` (every allocation here is) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns what it returned and how many allocations (and reallocations) it
/// made on this thread.
pub(crate) fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNT.with(|count| count.set(Some(0)));
    let out = f();
    let made = COUNT.with(|count| count.take()).unwrap_or_default();
    (out, made)
}
