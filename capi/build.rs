//! Gives the shared library its SONAME, `libsocknotify.so.<major>`, the name C programs
//! record when they link with `-lsocknotify` against the installed library.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsocknotify.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
