//! Helpers shared by the command-line tests.

use std::process::Command;

/// Runs the built `ace` binary with `args`: (success, stdout, stderr).
pub fn ace(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ace")).args(args).output().expect("run ace");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
