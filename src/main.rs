//! The `orgsync` binary: everything is in the library, from [`orgsync::cli::main`] on.

fn main() -> std::process::ExitCode {
    orgsync::cli::main()
}
