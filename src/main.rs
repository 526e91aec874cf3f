fn main() -> std::process::ExitCode {
    orgsync::cli::main()
}
