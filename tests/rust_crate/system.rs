// The crate over std's System allocator (tests/rust_crate_test.py).
#[path = "common.rs"]
mod common;

#[global_allocator]
static GLOBAL: alloctrace::Traced<std::alloc::System> = alloctrace::Traced::new(std::alloc::System);

fn main() {
    common::run(&GLOBAL);
}
