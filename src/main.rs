//! The one `cephr` binary: `cephr --role mon|all ...` runs daemons; every other
//! invocation is the admin CLI (`cephr status`, `cephr fs new ...`).
mod cli;

fn main() {
    std::process::exit(cli::run());
}
