// The crate over an allocator of the test's own: a bump allocator that
// remembers each block's layout and counts the releases that pass another
// one, which the tracer must never forward (tests/rust_crate_test.py).
use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[path = "common.rs"]
mod common;

const ARENA: usize = 64 << 20;
const BLOCKS: usize = 1 << 16;

struct Bump {
    lock: AtomicBool,
    arena: UnsafeCell<[u8; ARENA]>,
    used: UnsafeCell<usize>,
    // (address, size, align) of every block handed out, in order
    blocks: UnsafeCell<[(usize, usize, usize); BLOCKS]>,
    nblocks: UnsafeCell<usize>,
    mismatches: AtomicUsize,
    unknown: AtomicUsize,
    live: AtomicUsize,
}

unsafe impl Sync for Bump {}

impl Bump {
    fn lock(&self) {
        while self.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
    }
    fn unlock(&self) {
        self.lock.store(false, Ordering::Release);
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        self.lock();
        let base = (*self.arena.get()).as_mut_ptr() as usize;
        let start = (base + *self.used.get() + l.align() - 1) & !(l.align() - 1);
        let n = *self.nblocks.get();
        if start + l.size() > base + ARENA || n == BLOCKS {
            self.unlock();
            return std::ptr::null_mut();
        }
        *self.used.get() = start + l.size() - base;
        (*self.blocks.get())[n] = (start, l.size(), l.align());
        *self.nblocks.get() = n + 1;
        self.live.fetch_add(1, Ordering::Relaxed);
        self.unlock();
        start as *mut u8
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        self.lock();
        let blocks = &mut *self.blocks.get();
        let n = *self.nblocks.get();
        match blocks[..n].iter_mut().rev().find(|b| b.0 == p as usize) {
            Some(b) => {
                if b.1 != l.size() || b.2 != l.align() {
                    self.mismatches.fetch_add(1, Ordering::Relaxed);
                }
                b.0 = 0; // released: never found again
                self.live.fetch_sub(1, Ordering::Relaxed);
            }
            None => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.unlock();
    }
}

#[global_allocator]
static GLOBAL: alloctrace::Traced<Bump> = alloctrace::Traced::new(Bump {
    lock: AtomicBool::new(false),
    arena: UnsafeCell::new([0; ARENA]),
    used: UnsafeCell::new(0),
    blocks: UnsafeCell::new([(0, 0, 0); BLOCKS]),
    nblocks: UnsafeCell::new(0),
    mismatches: AtomicUsize::new(0),
    unknown: AtomicUsize::new(0),
    live: AtomicUsize::new(0),
});

fn main() {
    common::run(&GLOBAL);
    let inner = GLOBAL.inner();
    println!(
        "pool mismatches {} unknown {} blocks {}",
        inner.mismatches.load(Ordering::Relaxed),
        inner.unknown.load(Ordering::Relaxed),
        unsafe { *inner.nblocks.get() }
    );
}
