//! A `#[global_allocator]` that records every allocation and release, with
//! its exact `Layout`, into an alloctrace trace (a SQLite file; see
//! docs/rust.md of alloctrace):
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: alloctrace::Traced<std::alloc::System> = alloctrace::Traced::new(std::alloc::System);
//! ```
//!
//! `Traced<A>` decorates any `GlobalAlloc`.  The C tracer checks every
//! `dealloc` and `realloc` against the block's allocation: a layout that
//! differs is a `layout_mismatch` finding with both stacks, and the inner
//! allocator always receives the block's own layout, so the program keeps
//! running.
//!
//! How a call is routed (one global state for the process):
//!  - the first call opens the trace: at `$ALLOCTRACE_OUTPUT`, else
//!    `alloctrace.PROG.PID.db` in the working directory, as `alloctrace run`
//!    names traces; calls made by other threads meanwhile wait for it.
//!    Under `alloctrace run` (the preload library) no trace is opened: the
//!    preload library's tracer records the calls (its `at_preload_hook`),
//!    so the run writes one trace, with these layouts;
//!  - the trace is closed by a C exit handler (`atexit`): Rust runs no
//!    destructor for a static, and a handler registered this early runs
//!    after every other, so the leaks at exit are complete.  Calls still
//!    under way then are waited for; later calls go to the inner allocator;
//!  - a call made on a thread that is already inside this allocator (the
//!    tracer's opening, or an inner allocator that allocates through the
//!    global one) goes to the inner allocator untraced, and its block is
//!    remembered in a small table so that its release goes back there too,
//!    rather than reaching the tracer as a block it never saw (an invalid
//!    free, which the tracer would not forward).  A block allocated
//!    untraced because tracing was off (no trace could be opened, or after
//!    the close) is released untraced as well, as tracing stays off.
//!
//! The crate needs rustc 1.63 or newer and no other crate.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::{Cell, UnsafeCell};
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

mod ffi;
use ffi::*;

// ---- the process's tracing state ------------------------------------------

const UNINIT: u8 = 0;
const OPENING: u8 = 1;
const OWN: u8 = 2; // our own tracer, TRACER
const PRELOAD: u8 = 3; // the preload library's, through HOOK
const CLOSED: u8 = 4;
const OFF: u8 = 5; // no trace could be opened, or a forked child

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static TRACER: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
/// The preload library's at_preload_hook and the hooks it gave.
static HOOK: AtomicUsize = AtomicUsize::new(0);
static HOOK_MARK: AtomicUsize = AtomicUsize::new(0);
static HOOK_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Calls inside our own tracer now: the close waits for them.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set while this thread is inside the tracer (or opening it).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

#[inline(always)]
fn inside() -> bool {
    INSIDE.with(|c| c.get())
}

#[inline(always)]
fn set_inside(v: bool) {
    INSIDE.with(|c| c.set(v))
}

fn active(s: u8) -> bool {
    s == OWN || s == PRELOAD
}

/// A buffer written once, while STATE is OPENING, and read afterwards.
struct Once4k(UnsafeCell<[u8; 4096]>);
unsafe impl Sync for Once4k {}
static PATH: Once4k = Once4k(UnsafeCell::new([0; 4096]));

/// Writes to stderr without allocating.
fn say(parts: &[&[u8]]) {
    for p in parts {
        unsafe {
            write(2, p.as_ptr() as *const c_void, p.len());
        }
    }
}

unsafe fn c_bytes<'a>(s: *const c_char) -> &'a [u8] {
    std::slice::from_raw_parts(s as *const u8, strlen(s))
}

unsafe fn env(name: &[u8]) -> Option<&'static [u8]> {
    let v = getenv(name.as_ptr() as *const c_char);
    if v.is_null() || *v == 0 {
        None
    } else {
        Some(c_bytes(v))
    }
}

/// Appends `src` to buf[*n..], leaving room for the final NUL.
fn append(buf: &mut [u8], n: &mut usize, src: &[u8]) -> bool {
    if *n + src.len() >= buf.len() {
        return false;
    }
    buf[*n..*n + src.len()].copy_from_slice(src);
    *n += src.len();
    true
}

fn decimal(mut v: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &out[i..];
        }
    }
}

/// The trace's path into PATH: $ALLOCTRACE_OUTPUT, else
/// alloctrace.PROG.PID.db (tools/cmd_run.c's default).
unsafe fn choose_path() -> bool {
    let buf = &mut *PATH.0.get();
    let mut n = 0;
    let ok = match env(b"ALLOCTRACE_OUTPUT\0") {
        Some(out) => append(buf, &mut n, out),
        None => {
            let prog = if program_invocation_short_name.is_null() {
                &b"program"[..]
            } else {
                c_bytes(program_invocation_short_name)
            };
            let mut digits = [0u8; 20];
            let pid = decimal(getpid() as u64, &mut digits);
            append(buf, &mut n, b"alloctrace.")
                && append(buf, &mut n, prog)
                && append(buf, &mut n, b".")
                && append(buf, &mut n, pid)
                && append(buf, &mut n, b".db")
        }
    };
    buf[n] = 0;
    ok
}

extern "C" fn close_at_exit() {
    if STATE.compare_exchange(OWN, CLOSED, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        return;
    }
    while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
    let t = TRACER.swap(ptr::null_mut(), Ordering::SeqCst);
    set_inside(true);
    let rc = unsafe { at_tracer_close(t) };
    if rc != 0 {
        unsafe {
            say(&[b"alloctrace: writing the trace ", path_bytes(), b": ", c_bytes(at_strerror(rc)), b"\n"]);
        }
    }
}

/// A forked child of a process that writes its own trace runs untraced:
/// the trace's writer thread is the parent's.
extern "C" fn child_untraced() {
    let _ = STATE.compare_exchange(OWN, OFF, Ordering::SeqCst, Ordering::SeqCst);
}

unsafe fn path_bytes() -> &'static [u8] {
    c_bytes((*PATH.0.get()).as_ptr() as *const c_char)
}

/// A trace of our own; OWN or OFF.
unsafe fn open_own() -> u8 {
    if !choose_path() {
        say(&[b"alloctrace: the trace's path is too long; running untraced\n"]);
        return OFF;
    }
    let mut o = std::mem::MaybeUninit::<AtTraceOptions>::uninit();
    at_trace_options_init(o.as_mut_ptr());
    let mut o = o.assume_init();
    o.path = (*PATH.0.get()).as_ptr() as *const c_char;
    if let Some(d) = env(b"ALLOCTRACE_DEPTH\0") {
        let mut v: u32 = 0;
        for &c in d {
            if c.is_ascii_digit() && v < 100_000 {
                v = v * 10 + (c - b'0') as u32;
            }
        }
        o.stack_depth = v;
    }
    if env(b"ALLOCTRACE_UNWIND\0") == Some(&b"fp"[..]) {
        o.unwind = AT_UNWIND_FRAME_POINTERS;
    }
    let mut t: *mut c_void = ptr::null_mut();
    let rc = at_tracer_open(&o, &mut t);
    if rc != 0 {
        say(&[b"alloctrace: cannot open the trace ", path_bytes(), b": ", c_bytes(at_strerror(rc)),
              b"; running untraced\n"]);
        return OFF;
    }
    TRACER.store(t, Ordering::SeqCst);
    if atexit(close_at_exit) != 0 {
        say(&[b"alloctrace: atexit failed: the trace ", path_bytes(), b" will not be completed\n"]);
    }
    pthread_atfork(None, None, Some(child_untraced));
    OWN
}

unsafe extern "C" fn no_alloc(_: *mut c_void, _: AtLayout) -> *mut c_void {
    ptr::null_mut()
}
unsafe extern "C" fn no_dealloc(_: *mut c_void, _: *mut c_void, _: AtLayout) {}
struct SyncOps(AtAllocatorOps);
unsafe impl Sync for SyncOps {}
static PROBE_OPS: SyncOps = SyncOps(AtAllocatorOps {
    alloc: no_alloc,
    dealloc: no_dealloc,
    alloc_zeroed: None,
    realloc: None,
    name: ptr::null(),
});

/// The preload library's hooks when it is tracing this process.
unsafe fn preload_hooks(inner: &AtAllocator) -> Option<AtPreloadHooks> {
    let f = HOOK.load(Ordering::Acquire);
    if f == 0 {
        return None;
    }
    let hook: PreloadHookFn = std::mem::transmute(f);
    let mut h = AtPreloadHooks { allocator: *inner, mark: None, live_since: None };
    if hook(inner, &mut h) != 0 {
        return None;
    }
    Some(h)
}

/// Opens tracing for the process; PRELOAD, OWN or OFF.
unsafe fn open_global() -> u8 {
    let sym = dlsym(RTLD_DEFAULT, b"at_preload_hook\0".as_ptr() as *const c_char);
    if !sym.is_null() {
        HOOK.store(sym as usize, Ordering::Release);
        let probe = AtAllocator { ops: &PROBE_OPS.0, ctx: ptr::null_mut() };
        if let Some(h) = preload_hooks(&probe) {
            HOOK_MARK.store(h.mark.map_or(0, |f| f as usize), Ordering::Release);
            HOOK_LIVE.store(h.live_since.map_or(0, |f| f as usize), Ordering::Release);
            return PRELOAD;
        }
    }
    open_own()
}

/// The process's state, opening tracing when nobody has yet.  Not to be
/// called on a thread that is inside().
fn global_state() -> u8 {
    loop {
        let s = STATE.load(Ordering::Acquire);
        if s == UNINIT {
            if STATE.compare_exchange(UNINIT, OPENING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                set_inside(true);
                let r = unsafe { open_global() };
                STATE.store(r, Ordering::SeqCst);
                set_inside(false);
                return r;
            }
        } else if s == OPENING {
            std::thread::yield_now();
        } else {
            return s;
        }
    }
}

/// `inner` decorated by the process's tracer, or None when tracing is off.
fn decorate(inner: AtAllocator) -> Option<AtAllocator> {
    match global_state() {
        OWN => {
            set_inside(true);
            let a = unsafe { at_tracing_allocator(TRACER.load(Ordering::Acquire), inner) };
            set_inside(false);
            if a.ops == inner.ops {
                None
            } else {
                Some(a)
            }
        }
        PRELOAD => {
            set_inside(true);
            let h = unsafe { preload_hooks(&inner) };
            set_inside(false);
            h.map(|h| h.allocator)
        }
        _ => None,
    }
}

// ---- blocks allocated untraced while tracing ---------------------------------

const UNTRACED_SLOTS: usize = 256;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicUsize = AtomicUsize::new(0);
static UNTRACED: [AtomicUsize; UNTRACED_SLOTS] = [EMPTY; UNTRACED_SLOTS];
static UNTRACED_N: AtomicUsize = AtomicUsize::new(0);
/// Untraced blocks the table had no room for (their release reaches the
/// tracer, which reports it as an invalid free and keeps the block).
static UNTRACED_DROPPED: AtomicUsize = AtomicUsize::new(0);

fn remember_untraced(p: *mut u8) {
    let v = p as usize;
    for slot in UNTRACED.iter() {
        if slot.compare_exchange(0, v, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            UNTRACED_N.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    UNTRACED_DROPPED.fetch_add(1, Ordering::Relaxed);
}

/// Whether `p` was allocated untraced while tracing (and forgets it).
#[inline(always)]
fn forget_untraced(p: *mut u8) -> bool {
    if UNTRACED_N.load(Ordering::Relaxed) == 0 {
        return false;
    }
    forget_untraced_slow(p)
}

#[inline(never)]
fn forget_untraced_slow(p: *mut u8) -> bool {
    let v = p as usize;
    for slot in UNTRACED.iter() {
        if slot.load(Ordering::Acquire) == v
            && slot.compare_exchange(v, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            UNTRACED_N.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
    }
    false
}

// ---- the allocator ------------------------------------------------------------

const NONE: u8 = 0;
const DECORATING: u8 = 1;
const READY: u8 = 2;
const UNTRACED_INSTANCE: u8 = 3;

/// A global allocator that records every call of `A` into the trace.  Meant
/// for a `static` (`#[global_allocator]`): it must not move once used.
pub struct Traced<A: GlobalAlloc> {
    inner: A,
    inner_ops: AtAllocatorOps,
    decorated: UnsafeCell<AtAllocator>,
    ready: AtomicU8,
}

unsafe impl<A: GlobalAlloc + Sync> Sync for Traced<A> {}

unsafe fn layout_of(l: AtLayout) -> Layout {
    Layout::from_size_align_unchecked(l.size, l.align)
}

// The inner allocator as the C tracer calls it.
unsafe extern "C" fn inner_alloc<A: GlobalAlloc>(ctx: *mut c_void, l: AtLayout) -> *mut c_void {
    (*(ctx as *const A)).alloc(layout_of(l)) as *mut c_void
}
unsafe extern "C" fn inner_alloc_zeroed<A: GlobalAlloc>(ctx: *mut c_void, l: AtLayout) -> *mut c_void {
    (*(ctx as *const A)).alloc_zeroed(layout_of(l)) as *mut c_void
}
unsafe extern "C" fn inner_dealloc<A: GlobalAlloc>(ctx: *mut c_void, p: *mut c_void, l: AtLayout) {
    (*(ctx as *const A)).dealloc(p as *mut u8, layout_of(l))
}
unsafe extern "C" fn inner_realloc<A: GlobalAlloc>(
    ctx: *mut c_void,
    p: *mut c_void,
    l: AtLayout,
    new_size: usize,
) -> *mut c_void {
    (*(ctx as *const A)).realloc(p as *mut u8, layout_of(l), new_size) as *mut c_void
}

fn c_layout(l: Layout) -> AtLayout {
    AtLayout { size: l.size(), align: l.align() }
}

impl<A: GlobalAlloc> Traced<A> {
    pub const fn new(inner: A) -> Self {
        Traced {
            inner,
            inner_ops: AtAllocatorOps {
                alloc: inner_alloc::<A>,
                dealloc: inner_dealloc::<A>,
                alloc_zeroed: Some(inner_alloc_zeroed::<A>),
                realloc: Some(inner_realloc::<A>),
                name: ptr::null(),
            },
            decorated: UnsafeCell::new(AtAllocator { ops: ptr::null(), ctx: ptr::null_mut() }),
            ready: AtomicU8::new(NONE),
        }
    }

    /// The allocator it decorates.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// The decorated allocator when this call is to be traced; end() must
    /// follow.  None: the call goes to the inner allocator.
    #[inline(always)]
    fn begin(&self) -> Option<AtAllocator> {
        if self.ready.load(Ordering::Acquire) != READY {
            return self.begin_slow();
        }
        if inside() {
            return None;
        }
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        if active(STATE.load(Ordering::SeqCst)) {
            set_inside(true);
            return Some(unsafe { *self.decorated.get() });
        }
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        None
    }

    #[inline(always)]
    fn end(&self) {
        set_inside(false);
        IN_FLIGHT.fetch_sub(1, Ordering::Release);
    }

    #[cold]
    #[inline(never)]
    fn begin_slow(&self) -> Option<AtAllocator> {
        if inside() {
            return None;
        }
        loop {
            match self.ready.load(Ordering::Acquire) {
                READY => return self.begin(),
                UNTRACED_INSTANCE => return None,
                DECORATING => std::thread::yield_now(),
                _ => {
                    if self
                        .ready
                        .compare_exchange(NONE, DECORATING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        let inner = AtAllocator {
                            ops: &self.inner_ops,
                            ctx: &self.inner as *const A as *mut c_void,
                        };
                        match decorate(inner) {
                            Some(a) => {
                                unsafe { *self.decorated.get() = a };
                                self.ready.store(READY, Ordering::Release);
                            }
                            None => self.ready.store(UNTRACED_INSTANCE, Ordering::Release),
                        }
                    }
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn untraced_alloc(&self, l: Layout, zeroed: bool) -> *mut u8 {
        let p = if zeroed { self.inner.alloc_zeroed(l) } else { self.inner.alloc(l) };
        if !p.is_null() && inside() {
            remember_untraced(p);
        }
        p
    }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Traced<A> {
    #[inline(always)]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        match self.begin() {
            Some(a) => {
                let p = ((*a.ops).alloc)(a.ctx, c_layout(l)) as *mut u8;
                self.end();
                p
            }
            None => self.untraced_alloc(l, false),
        }
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        match self.begin() {
            Some(a) => {
                let p = match (*a.ops).alloc_zeroed {
                    Some(f) => f(a.ctx, c_layout(l)) as *mut u8,
                    None => {
                        let p = ((*a.ops).alloc)(a.ctx, c_layout(l)) as *mut u8;
                        if !p.is_null() {
                            ptr::write_bytes(p, 0, l.size());
                        }
                        p
                    }
                };
                self.end();
                p
            }
            None => self.untraced_alloc(l, true),
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if forget_untraced(p) {
            return self.inner.dealloc(p, l);
        }
        match self.begin() {
            Some(a) => {
                ((*a.ops).dealloc)(a.ctx, p as *mut c_void, c_layout(l));
                self.end();
            }
            None => self.inner.dealloc(p, l),
        }
    }

    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if forget_untraced(p) {
            let q = self.inner.realloc(p, l, new_size);
            remember_untraced(if q.is_null() { p } else { q });
            return q;
        }
        match self.begin() {
            Some(a) => {
                // Both decorators have a realloc; the C library's
                // at_realloc covers any other.
                let q = match (*a.ops).realloc {
                    Some(f) => f(a.ctx, p as *mut c_void, c_layout(l), new_size),
                    None => at_realloc(a, p as *mut c_void, c_layout(l), new_size),
                } as *mut u8;
                self.end();
                q
            }
            None => self.inner.realloc(p, l, new_size),
        }
    }
}

extern "C" {
    fn at_realloc(a: AtAllocator, p: *mut c_void, old: AtLayout, new_size: usize) -> *mut c_void;
}

// ---- scoped checks ------------------------------------------------------------

/// A point in the trace (alloctrace's `marks` table), for live_since.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    seq: u64,
    traced: bool,
}

/// Blocks allocated since a mark and still live, their bytes and their
/// distinct allocation stacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub blocks: u64,
    pub bytes: u64,
    pub sites: u64,
}

/// Runs `f` on our own tracer, if tracing into one, with the close held off.
fn with_own_tracer<R>(f: impl FnOnce(*mut c_void) -> R) -> Option<R> {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let r = if STATE.load(Ordering::SeqCst) == OWN {
        let was = inside();
        set_inside(true);
        let r = f(TRACER.load(Ordering::Acquire));
        set_inside(was);
        Some(r)
    } else {
        None
    };
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    r
}

fn mark_c(label: *const c_char) -> Mark {
    if inside() {
        return Mark { seq: 0, traced: false };
    }
    match global_state() {
        OWN => match with_own_tracer(|t| unsafe { at_tracer_mark(t, label) }) {
            Some(seq) => Mark { seq, traced: true },
            None => Mark { seq: 0, traced: false },
        },
        PRELOAD => {
            let f = HOOK_MARK.load(Ordering::Acquire);
            if f == 0 {
                return Mark { seq: 0, traced: false };
            }
            let f: unsafe extern "C" fn(*const c_char) -> u64 = unsafe { std::mem::transmute(f) };
            Mark { seq: unsafe { f(label) }, traced: true }
        }
        _ => Mark { seq: 0, traced: false },
    }
}

/// Marks this point of the run (opening the trace if nothing did yet).
pub fn mark() -> Mark {
    mark_c(ptr::null())
}

/// The same, with a label recorded in the trace's `marks` table.
pub fn mark_labeled(label: &CStr) -> Mark {
    mark_c(label.as_ptr())
}

fn live(m: &Mark, this_thread: bool) -> Live {
    let mut s = AtLiveSummary::default();
    if !m.traced || inside() {
        return Live::default();
    }
    match STATE.load(Ordering::Acquire) {
        OWN => {
            with_own_tracer(|t| unsafe {
                if this_thread {
                    at_tracer_live_since_thread(t, m.seq, &mut s)
                } else {
                    at_tracer_live_since(t, m.seq, &mut s)
                }
            });
        }
        PRELOAD => {
            let f = HOOK_LIVE.load(Ordering::Acquire);
            if f != 0 {
                let f: unsafe extern "C" fn(u64, c_int, *mut AtLiveSummary) = unsafe { std::mem::transmute(f) };
                unsafe { f(m.seq, this_thread as c_int, &mut s) };
            }
        }
        _ => {}
    }
    Live { blocks: s.blocks, bytes: s.bytes, sites: s.sites }
}

/// Blocks allocated since `m` by any thread and still live.  All zero when
/// the process is not traced.
pub fn live_since(m: &Mark) -> Live {
    live(m, false)
}

/// Blocks allocated since `m` by the calling thread and still live
/// (whichever thread releases them): tests running at once on several
/// threads each see their own.
pub fn live_since_this_thread(m: &Mark) -> Live {
    live(m, true)
}

/// Whether this process's allocations are being traced (false before the
/// first allocation, after the close, or when no trace could be opened).
pub fn is_traced() -> bool {
    active(STATE.load(Ordering::Acquire))
}

/// Whether the trace is the preload library's (`alloctrace run`).
pub fn is_preloaded() -> bool {
    STATE.load(Ordering::Acquire) == PRELOAD
}

/// Blocks allocated untraced while tracing that this crate could not
/// remember (see the crate's documentation); 0 in any ordinary run.
pub fn untraced_dropped() -> usize {
    UNTRACED_DROPPED.load(Ordering::Relaxed)
}
