//! Compiles the one assembly file for the target CPU family (`asm/<arch>.S`,
//! or `asm/<arch>_windows.S` where Windows has an ABI of its own: Win64).
//!
//! The exported symbols carry the crate version in their names so that two
//! versions of this crate linked into one program never collide; `src/arch/mod.rs`
//! builds the same names from the same environment variables. With the cargo
//! feature `fp-control` the file is assembled with `GREENLET_FP_CONTROL`
//! defined, which adds the floating-point control state to the saved frame.

use std::path::Path;

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let file = if os == "windows" && arch == "x86_64" {
        format!("asm/{arch}_windows.S")
    } else {
        format!("asm/{arch}.S")
    };
    println!("cargo:rerun-if-changed={file}");
    println!("cargo:rerun-if-changed=build.rs");
    if !Path::new(&file).exists() {
        panic!(
            "\n\ngreenlet does not support the CPU family `{arch}` yet: there is no `{file}`.\n\
             To port it, add `{file}` with the switch routine, the initial-frame builder and\n\
             the entry trampoline; docs/porting.md walks through every step.\n\n"
        );
    }
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "windows" && target_env == "msvc" && !gnu_assembler_for_msvc() {
        // The .S files are GNU assembler syntax, which MSVC's cl.exe and
        // ml64 cannot read. `cargo check` needs no object code, so it passes;
        // a link fails on the missing switch symbols (README, docs/porting.md).
        println!(
            "cargo:warning=greenlet: the switch assembly ({file}) is GNU assembler syntax and is \
             not built for the MSVC toolchain; use x86_64-pc-windows-gnu, or set CC to a clang \
             (clang-cl reads it) to link an -msvc build"
        );
        return;
    }
    if !matches!(os.as_str(), "linux" | "windows" | "macos") {
        println!(
            "cargo:warning=greenlet is developed and tested on Linux and Windows; target os `{os}` is untested"
        );
    }
    let version = format!(
        "{}_{}_{}",
        env("CARGO_PKG_VERSION_MAJOR"),
        env("CARGO_PKG_VERSION_MINOR"),
        env("CARGO_PKG_VERSION_PATCH")
    );
    // Mach-O names carry a leading underscore; rustc adds it to the names the
    // Rust side declares, so the assembler is given it here.
    let vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    let prefix = if vendor == "apple" { "_" } else { "" };
    println!("cargo:rerun-if-changed=asm/platform.h");
    println!("cargo:rerun-if-changed=asm/link.h");
    let mut build = cc::Build::new();
    build.file(&file).include("asm");
    if std::env::var_os("CARGO_FEATURE_FP_CONTROL").is_some() {
        build.define("GREENLET_FP_CONTROL", None);
    }
    for (macro_name, routine) in [
        ("GREENLET_RESUME", "resume"),
        ("GREENLET_YIELD", "yield"),
        ("GREENLET_INIT", "init"),
        ("GREENLET_ENTRY", "entry"),
    ] {
        build.define(
            macro_name,
            format!("{prefix}greenlet_{version}_{routine}").as_str(),
        );
    }
    build.compile("greenlet_switch");
}

/// Whether the C compiler that `cc` would use for an MSVC target is a clang,
/// which assembles GNU syntax `.S` files for it.
fn gnu_assembler_for_msvc() -> bool {
    cc::Build::new()
        .try_get_compiler()
        .is_ok_and(|c| c.is_like_clang() || c.is_like_clang_cl())
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"))
}
