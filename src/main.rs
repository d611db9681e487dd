//! The `crashcart` binary: see `crashcart --help`.

fn main() {
    std::process::exit(crashcart::cli::main());
}
