//! The one `cephr` binary: `cephr --role mon|all ...` runs daemons; every other
//! invocation is the admin CLI (`cephr status`, `cephr fs new ...`).
mod cli;

/// Keeps large buffers (4 MiB objects, 16 MiB read-ahead windows) in the heap instead
/// of mapping and unmapping them for each allocation: glibc's default maps blocks above
/// 128 KiB (raising that adaptively) and returns freed heap tops to the kernel, so every
/// new message buffer page-faulted and was zeroed by the kernel again (page faults and
/// `clear_page` were ~3% of a cold read's CPU). Freed memory stays for reuse instead.
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() {
    tune_malloc();
    std::process::exit(cli::run());
}
