//! The `multiproj` command: a thin entry point over this crate's library (`lib.rs`), which is a
//! client of the `multiproj` library facade.

fn main() -> std::process::ExitCode {
    multiproj_cli::main()
}
