//! The one `cephr` binary: `cephr --role mon|all ...` runs daemons; every other
//! invocation is the admin CLI (`cephr status`, `cephr fs new ...`).
mod cli;

/// mimalloc instead of glibc's malloc: the daemons allocate and free many small
/// buffers per message (frames, envelopes, futures, map entries) across threads, and
/// mimalloc's thread-local free lists cost less: measured on 4 KiB writes at 16 in
/// flight, the daemons' CPU per write fell from 409-489 to 322-381 µs (docs/benchmarks.md,
/// session 12). It also reuses freed large blocks (4 MiB objects, read-ahead windows)
/// without the `mallopt` tuning glibc needed: the daemons' minor page faults over a 4 MiB
/// write and read run fell from 108,000-133,000 to 74,000-76,000.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run());
}
