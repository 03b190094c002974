// bench/rust_bench.sh's workload: BTreeMap and Vec heavy (many small
// blocks: tree nodes, strings, growing vectors), the same in each build.
use std::collections::BTreeMap;

pub fn run(n: u64) -> u64 {
    let mut map: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut check = 0u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("k{}", x % (n / 4 + 1));
        let v = map.entry(key).or_insert_with(Vec::new);
        v.push(i);
        if v.len() > 16 {
            check = check.wrapping_add(v.iter().sum::<u64>());
            v.clear();
            v.shrink_to_fit();
        }
        if i % 1024 == 0 {
            // drop a range of keys: frees nodes, strings and vectors
            let cut = format!("k{}", x % (n / 4 + 1));
            let tail = map.split_off(&cut);
            check = check.wrapping_add(tail.len() as u64);
            for (k, v) in tail.into_iter().step_by(2) {
                map.insert(k, v);
            }
        }
    }
    check.wrapping_add(map.len() as u64)
}
