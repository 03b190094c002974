// Finds the C library: ALLOCTRACE_LIB_DIR (a directory holding
// liballoctrace.so or liballoctrace.a, such as a meson build's lib/), else
// `pkg-config alloctrace`.  Fails with what it looked for when neither
// gives it.
use std::env;
use std::path::Path;
use std::process::{exit, Command};

fn fail(msg: &str) -> ! {
    eprintln!("error: alloctrace: {}", msg);
    exit(1);
}

/// -L and -l flags of a pkg-config call, passed on to cargo.
fn emit_pkg_config_flags(out: &str) {
    for flag in out.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", dir);
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={}", lib);
        }
    }
}

fn pkg_config(args: &[&str]) -> Result<String, String> {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    match Command::new(&pc).args(args).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run {}: {}", pc, e)),
    }
}

fn from_dir(dir: &Path) {
    let so = dir.join("liballoctrace.so");
    let a = dir.join("liballoctrace.a");
    println!("cargo:rustc-link-search=native={}", dir.display());
    if so.exists() {
        println!("cargo:rerun-if-changed={}", so.display());
        println!("cargo:rustc-link-lib=dylib=alloctrace");
    } else if a.exists() {
        println!("cargo:rerun-if-changed={}", a.display());
        println!("cargo:rustc-link-lib=static=alloctrace");
        // The static library needs what the shared one links.
        match pkg_config(&["--libs", "--static", "sqlite3", "libunwind", "libdw"]) {
            Ok(out) => emit_pkg_config_flags(&out),
            Err(e) => fail(&format!(
                "{} is static and its dependencies (sqlite3, libunwind, libdw) were not found by pkg-config: {}",
                a.display(),
                e
            )),
        }
    } else {
        fail(&format!(
            "ALLOCTRACE_LIB_DIR is {} but neither {} nor {} exists",
            dir.display(),
            so.display(),
            a.display()
        ));
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=ALLOCTRACE_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");
    match env::var_os("ALLOCTRACE_LIB_DIR") {
        Some(dir) if !dir.is_empty() => from_dir(Path::new(&dir)),
        _ => match pkg_config(&["--libs", "alloctrace"]) {
            Ok(out) => emit_pkg_config_flags(&out),
            Err(e) => fail(&format!(
                "the C library was not found: ALLOCTRACE_LIB_DIR is not set (a directory with \
                 liballoctrace.so or liballoctrace.a, such as a meson build's lib/), and \
                 `pkg-config --libs alloctrace` failed: {}",
                e
            )),
        },
    }
    // dlsym (at_preload_hook): in libc itself since glibc 2.34, in libdl before.
    println!("cargo:rustc-link-lib=dl");
}
