//! Links Debian's libespeak-ng (found through pkg-config) for the hand-written FFI in `src/espeak.rs`.

fn main() {
    if let Err(e) = pkg_config::Config::new()
        .atleast_version("1.49")
        .probe("espeak-ng")
    {
        // Fall back to the plain library name so a system without the .pc file still links.
        println!("cargo:warning=pkg-config could not find espeak-ng ({e}); linking -lespeak-ng");
        println!("cargo:rustc-link-lib=espeak-ng");
    }
}
