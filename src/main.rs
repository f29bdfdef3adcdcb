//! The `smshook` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    smshook::cli::main()
}
