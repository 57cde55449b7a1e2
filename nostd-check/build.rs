fn main() {
    // No C runtime: the program provides `_start` itself.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-nostartfiles");
        println!("cargo:rustc-link-arg-bins=-static");
        // memcpy/memset for core, from the C library (not Rust's std).
        println!("cargo:rustc-link-arg-bins=-lc");
    }
}
