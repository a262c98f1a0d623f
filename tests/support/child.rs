//! Re-running one test of the current test binary as a child process, for
//! scenarios that end the process (an overflow, a fault) or whose report goes
//! to stderr. In the child, `in_child()` is true and the same test function
//! plays the scenario; in the parent it inspects the child's `Output`.
//!
//! Under qemu-user without binfmt_misc the child cannot be executed directly;
//! it is then started through `qemu-<arch> -L <sysroot>` (the sysroot comes from
//! `QEMU_LD_PREFIX`, else the CPU's usual one; see `emulator`), and the test
//! fails loudly if neither works. `GREENLET_CHILD_RUNNER` names an emulator to
//! start every child through (for qemu-user runs on the host's own CPU).

#![allow(dead_code)] // each test file uses part of this helper

use std::process::{Command, Output};

/// Set in the environment of a child run.
const CHILD: &str = "GREENLET_TEST_CHILD";

pub fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs test `name` of this binary alone, as a child process in child mode.
pub fn run_child(name: &str) -> Output {
    run_child_with(name, &[])
}

/// [`run_child`] with extra environment variables for the child.
pub fn run_child_with(name: &str, envs: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("path of the test binary");
    // The test binary in child mode, run alone: directly when `launcher` is
    // empty, else started by the launcher's program and arguments (an
    // emulator and its flags).
    let child = |launcher: &[&std::ffi::OsStr]| {
        let mut command = match launcher.split_first() {
            None => Command::new(&exe),
            Some((program, flags)) => {
                let mut command = Command::new(program);
                command.args(flags).arg(&exe);
                command
            }
        };
        command
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("RUST_BACKTRACE", "0")
            .envs(envs.iter().copied());
        command
    };
    // A test binary the kernel can run directly is run directly, even when
    // the parent runs under an emulator (qemu-x86_64 on x86_64): set
    // GREENLET_CHILD_RUNNER (for example to `qemu-x86_64`) to start children
    // through the same emulator.
    if let Some(runner) = std::env::var("GREENLET_CHILD_RUNNER")
        .ok()
        .filter(|r| !r.trim().is_empty())
    {
        let launcher: Vec<&std::ffi::OsStr> =
            runner.split_whitespace().map(|w| w.as_ref()).collect();
        return child(&launcher)
            .output()
            .unwrap_or_else(|e| panic!("GREENLET_CHILD_RUNNER={runner:?} cannot start: {e}"));
    }
    let direct = child(&[]).output();
    // A foreign binary under qemu-user without binfmt_misc cannot be executed:
    // either the spawn fails with ENOEXEC, or (with qemu's emulation of
    // vfork-based spawning) the child exits with 127 before printing anything,
    // which a test binary always does.
    let never_ran = |out: &Output| {
        out.status.code() == Some(127) && out.stdout.is_empty() && out.stderr.is_empty()
    };
    match direct {
        Ok(out) if !never_ran(&out) => out,
        Err(e) if e.raw_os_error() != Some(libc::ENOEXEC) => {
            panic!("cannot re-run the test binary {}: {e}", exe.display())
        }
        _ => {
            // Run the child through the emulator too.
            let (qemu, default_sysroot) = emulator();
            let sysroot = std::env::var("QEMU_LD_PREFIX").unwrap_or(default_sysroot);
            child(&[qemu.as_ref(), "-L".as_ref(), sysroot.as_ref()])
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "CHILD-PROCESS TESTS CANNOT RUN: {} is a foreign binary and `{qemu} -L {sysroot}` \
                         failed to start it: {e}",
                        exe.display()
                    )
                })
        }
    }
}

/// The qemu-user program for this CPU and its default sysroot: mostly
/// `qemu-<arch>` and Debian's `/usr/<arch>-linux-gnu`, where Rust's name for
/// the CPU is not the one qemu and Debian use. i386 programs run on the host's
/// own 32-bit libraries (`/lib32`, Debian's libc6-i386), as they do natively:
/// with `/usr/i686-linux-gnu` the cross loader would still find the host's
/// `/lib32` libc through `/etc/ld.so.cache`, and a loader and libc from two
/// glibc builds hang in the first `pthread_create`.
fn emulator() -> (String, String) {
    let arch = std::env::consts::ARCH;
    match arch {
        "x86" => ("qemu-i386".into(), "/".into()),
        // The Debian cross sysroot is named after the GNU triple, which for
        // hard-float 32-bit ARM is not `<arch>-linux-gnu`.
        "arm" => ("qemu-arm".into(), "/usr/arm-linux-gnueabihf".into()),
        "powerpc64" if cfg!(target_endian = "little") => {
            ("qemu-ppc64le".into(), "/usr/powerpc64le-linux-gnu".into())
        }
        _ => (format!("qemu-{arch}"), format!("/usr/{arch}-linux-gnu")),
    }
}

/// True when this test binary cannot be executed directly by the kernel, i.e.
/// it runs under qemu-user without binfmt_misc (host tools such as gdb cannot
/// run it either then).
pub fn emulated() -> bool {
    let exe = std::env::current_exe().expect("path of the test binary");
    match Command::new(&exe).arg("--list").output() {
        Ok(out) => out.status.code() == Some(127) && out.stdout.is_empty(),
        Err(e) => e.raw_os_error() == Some(libc::ENOEXEC),
    }
}
