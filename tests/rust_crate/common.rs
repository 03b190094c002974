// The workload of the crate's test programs (tests/rust_crate_test.py):
// each function is never inlined, so that its frame names it, and the
// lines the test looks for are marked with a comment (MARK: name).
use std::alloc::{GlobalAlloc, Layout};

#[repr(align(64))]
pub struct Aligned(pub [u8; 100]);

#[inline(never)]
pub fn aligned() -> u8 {
    let b = Box::new(Aligned([1; 100])); // MARK: aligned
    b.0[3]
}

#[inline(never)]
pub fn grow() -> usize {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..100 {
        v.push(i); // MARK: grow
    }
    v.len()
}

/// A Vec rebuilt with the wrong capacity: released as 64 bytes, allocated
/// as 40.
#[inline(never)]
pub fn wrong_layout() -> u32 {
    let mut v: Vec<u32> = Vec::with_capacity(10); // MARK: mismatch_alloc
    v.push(5);
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    let w = unsafe { Vec::from_raw_parts(p, 1, 16) };
    let first = w[0];
    drop(w); // MARK: mismatch_release
    first
}

#[inline(never)]
pub fn leak_box() -> &'static mut [u8; 300] {
    Box::leak(Box::new([7u8; 300])) // MARK: leak_box
}

#[inline(never)]
pub fn forget_vec() {
    let v = vec![1u16; 250]; // MARK: forget_vec
    std::mem::forget(v);
}

/// Four threads, each checking its own blocks with live_since_this_thread.
#[inline(never)]
pub fn threads() -> Vec<(alloctrace::Live, alloctrace::Live)> {
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            std::thread::spawn(move || {
                let m = alloctrace::mark();
                let keep: Vec<Box<[u8; 48]>> = (0..100).map(|_| Box::new([t; 48])).collect();
                let live = alloctrace::live_since_this_thread(&m);
                drop(keep);
                (live, alloctrace::live_since_this_thread(&m))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Everything above; prints what the test checks.
pub fn run<A: GlobalAlloc>(_global: &A) {
    let _ = Layout::new::<u8>();
    println!("aligned {}", aligned());
    println!("grow {}", grow());
    println!("mismatch {}", wrong_layout());
    println!("leak_box {}", leak_box()[0]);
    forget_vec();
    for (i, (live, after)) in threads().iter().enumerate() {
        println!("thread {} live {} {} after {} {}", i, live.blocks, live.bytes, after.blocks, after.bytes);
    }
    let m = alloctrace::mark_labeled(std::ffi::CStr::from_bytes_with_nul(b"main\0").unwrap());
    let b = Box::new([3u8; 24]);
    let live = alloctrace::live_since(&m);
    drop(b);
    let after = alloctrace::live_since(&m);
    println!("main live {} {} after {} {}", live.blocks, live.bytes, after.blocks, after.bytes);
    println!("traced {} preloaded {}", alloctrace::is_traced(), alloctrace::is_preloaded());
}
