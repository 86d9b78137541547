//! The `ace` command: `ace demo` runs a simulated fleet on the embedded store.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
