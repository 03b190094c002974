//! The C library's interface (lib/include/alloctrace/*.h), as much of it as
//! the crate uses, and the few C library functions it calls.  The structs
//! mirror the C ones field by field.

use std::os::raw::{c_char, c_int, c_uint, c_void};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct AtLayout {
    pub size: usize,
    pub align: usize,
}

pub type AllocFn = unsafe extern "C" fn(*mut c_void, AtLayout) -> *mut c_void;
pub type DeallocFn = unsafe extern "C" fn(*mut c_void, *mut c_void, AtLayout);
pub type ReallocFn = unsafe extern "C" fn(*mut c_void, *mut c_void, AtLayout, usize) -> *mut c_void;

/// at_allocator_ops
#[repr(C)]
pub struct AtAllocatorOps {
    pub alloc: AllocFn,
    pub dealloc: DeallocFn,
    pub alloc_zeroed: Option<AllocFn>,
    pub realloc: Option<ReallocFn>,
    pub name: *const c_char,
}

/// at_allocator
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AtAllocator {
    pub ops: *const AtAllocatorOps,
    pub ctx: *mut c_void,
}

/// at_trace_options
#[repr(C)]
pub struct AtTraceOptions {
    pub path: *const c_char,
    pub overwrite: c_int,
    pub stack_depth: c_uint,
    pub abort_on_finding: c_int,
    pub no_leak_scan: c_int,
    pub buffer_limit: usize,
    pub argc: c_int,
    pub argv: *const *mut c_char,
    pub unwind: c_int,
    pub no_release_stacks: c_int,
}

pub const AT_UNWIND_FRAME_POINTERS: c_int = 1;

/// at_live_summary
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct AtLiveSummary {
    pub blocks: u64,
    pub bytes: u64,
    pub sites: u64,
}

/// The preload library's at_preload_hooks (lib/preload/preload.c).
#[repr(C)]
pub struct AtPreloadHooks {
    pub allocator: AtAllocator,
    pub mark: Option<unsafe extern "C" fn(*const c_char) -> u64>,
    pub live_since: Option<unsafe extern "C" fn(u64, c_int, *mut AtLiveSummary)>,
}

pub type PreloadHookFn = unsafe extern "C" fn(*const AtAllocator, *mut AtPreloadHooks) -> c_int;

extern "C" {
    pub fn at_trace_options_init(opts: *mut AtTraceOptions);
    pub fn at_tracer_open(opts: *const AtTraceOptions, out: *mut *mut c_void) -> c_int;
    pub fn at_tracer_close(tracer: *mut c_void) -> c_int;
    pub fn at_tracing_allocator(tracer: *mut c_void, inner: AtAllocator) -> AtAllocator;
    pub fn at_tracer_mark(tracer: *mut c_void, label: *const c_char) -> u64;
    pub fn at_tracer_live_since(tracer: *mut c_void, mark: u64, out: *mut AtLiveSummary);
    pub fn at_tracer_live_since_thread(tracer: *mut c_void, mark: u64, out: *mut AtLiveSummary);
    pub fn at_strerror(code: c_int) -> *const c_char;
}

// The C library's own: none of these allocates through Rust's allocator.
extern "C" {
    pub fn getenv(name: *const c_char) -> *const c_char;
    pub fn getpid() -> c_int;
    pub fn atexit(f: extern "C" fn()) -> c_int;
    pub fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> c_int;
    pub fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void;
    pub fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    pub fn strlen(s: *const c_char) -> usize;
    pub static program_invocation_short_name: *const c_char;
}

/// RTLD_DEFAULT of glibc's <dlfcn.h>.
pub const RTLD_DEFAULT: *mut c_void = 0 as *mut c_void;
