// A Rust program traced by the alloctrace crate (docs/rust.md): counts the
// words of its input (a file, or stdin), and checks with mark/live_since
// that counting leaves nothing behind but the table it returns.
//
//   cd examples/rust && ALLOCTRACE_LIB_DIR=../../build/lib cargo build --offline
//   LD_LIBRARY_PATH=../../build/lib ALLOCTRACE_OUTPUT=wc.db target/debug/word_count FILE
//   alloctrace report wc.db
use std::collections::BTreeMap;
use std::io::Read;

#[global_allocator]
static GLOBAL: alloctrace::Traced<std::alloc::System> = alloctrace::Traced::new(std::alloc::System);

fn count(text: &str) -> BTreeMap<String, usize> {
    let mut words = BTreeMap::new();
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        *words.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    words
}

fn main() {
    let mut text = String::new();
    match std::env::args().nth(1) {
        Some(path) => text = std::fs::read_to_string(path).expect("cannot read the file"),
        None => {
            std::io::stdin().read_to_string(&mut text).expect("cannot read stdin");
        }
    }
    let mark = alloctrace::mark();
    let words = count(&text);
    let live = alloctrace::live_since_this_thread(&mark);
    let distinct = words.len();
    let top = words.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(w, n)| (w.len(), *n));
    drop(words);
    let left = alloctrace::live_since_this_thread(&mark);
    // Printed only now: stdout's buffer, allocated on the first print, is
    // not counting's.  What count() left live is the table: a block per
    // key, plus the tree's nodes.
    println!("{} distinct words; {} blocks ({} bytes) live since the mark", distinct, live.blocks, live.bytes);
    if let Some((len, n)) = top {
        println!("the most frequent word has {} letters and appears {} times", len, n);
    }
    println!("after drop: {} blocks live since the mark", left.blocks);
}
