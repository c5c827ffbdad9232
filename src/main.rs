//! The `precheck` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    precheck::cli::main().into()
}
