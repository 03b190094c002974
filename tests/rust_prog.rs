// A Rust program that leaks one Box through a function that is never
// inlined (rust_test.py builds it with both symbol manglings).
#[inline(never)]
fn leak_box(n: u64) -> &'static mut [u64; 64] {
    Box::leak(Box::new([n; 64]))
}

fn main() {
    let b = leak_box(7);
    println!("leaked {}", b[0]);
}
