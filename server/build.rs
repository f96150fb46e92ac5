//! Compiles the server again when the browser bundle it embeds changes (`src/site.rs`).
//! The folder is created when missing: Cargo would otherwise run this script on every
//! build, and a server built before the bundle simply carries none.

fn main() {
    let pkg = std::path::Path::new("../target/site/pkg");
    if let Err(e) = std::fs::create_dir_all(pkg) {
        println!("cargo:warning=cannot create {}: {e}", pkg.display());
    }
    println!("cargo:rerun-if-changed=../target/site/pkg");
}
