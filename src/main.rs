//! The `multiproj` command; all of it lives in the `multiproj-cli` crate.

fn main() -> std::process::ExitCode {
    multiproj_cli::main()
}
