//! The `crashcart` binary: see `crashcart --help`.

/// mimalloc: the mocks allocate per request from many tasks at once, where glibc's malloc
/// contends on its arena locks (seen in the load benches' profiles).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(crashcart::cli::main());
}
