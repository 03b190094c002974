// The workload with alloctrace::Traced<System> as the global allocator.
#[path = "workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: alloctrace::Traced<std::alloc::System> = alloctrace::Traced::new(std::alloc::System);

fn main() {
    let n = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    println!("{}", workload::run(n));
}
