//! The memory of the per-address state at its capacity (the figure in
//! `docs/operations.md`, Sizing), measured with a counting allocator: the
//! rates of `limits.address_capacity` addresses, then as many more (a spray)
//! that must not grow it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Admits and drops one connection from each of `n` addresses from `base`.
fn spray(limits: &Arc<wsguard::limits::Limits>, base: u32, n: u32) {
    for i in base..base + n {
        let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        drop(limits.admit(limits.key(ip)).expect("admitted"));
    }
}

#[test]
fn per_address_state_at_capacity() {
    let config = wsguard::config::LimitsConfig {
        address_capacity: 100_000,
        ..Default::default()
    };
    let before = LIVE.load(Ordering::Relaxed);
    let limits = Arc::new(wsguard::limits::Limits::new(&config));
    let t = std::time::Instant::now();
    spray(&limits, 0, 100_000);
    println!("100000 admits in {:?}", t.elapsed());
    assert_eq!(limits.remembered_addresses(), 100_000);
    let full = LIVE.load(Ordering::Relaxed) - before;
    spray(&limits, 100_000, 100_000);
    let remembered = limits.remembered_addresses();
    let after_spray = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "per-address state: {full} bytes at capacity 100000 ({} bytes per address); after a spray of as many more: {after_spray} bytes, {remembered} addresses",
        full / 100_000
    );
    assert!(remembered <= 100_000, "{remembered}");
    assert!(after_spray < full + full / 4, "{after_spray} vs {full}");
    assert_eq!(limits.addresses_with_connections(), 0);
    // Well under a kilobyte per address.
    assert!(full / 100_000 < 1024, "{full}");
}
