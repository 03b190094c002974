// The workload with Rust's default allocator (no crate).
#[path = "workload.rs"]
mod workload;

fn main() {
    let n = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    println!("{}", workload::run(n));
}
