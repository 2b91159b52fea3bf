//! The `kloud` binary: a thin shell over the library.

fn main() -> std::process::ExitCode {
    kloud::cli::main()
}
