//! The `smshook` binary: everything lives in the library; see `cli`.

/// See Cargo.toml: measured faster than the system allocator for this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    smshook::cli::main()
}
