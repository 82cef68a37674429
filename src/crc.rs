//! CRC-32C (Castagnoli): block-file slots, the OSD's write-ahead log, the MDS journal
//! and the wire's `crc` mode. crc-fast folds with carry-less multiplication
//! (VPCLMULQDQ with AVX-512 where the CPU has it, else PCLMULQDQ with the SSE 4.2
//! instruction): 40–78 GB/s on 1–64 KB buffers on this machine, against 10–16 GB/s
//! for the crc32c crate's SSE 4.2 loop it replaces, with identical values (so data
//! written before still checks).

/// CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// CRC-32C of `prefix ++ data`, given `crc` = CRC-32C of `prefix`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    // The register after the prefix is its CRC before the final inversion.
    let mut d = crc_fast::Digest::new_with_init_state(crc_fast::CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    d.update(data);
    d.finalize() as u32
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn check_value() {
        assert_eq!(super::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(super::crc32c(b""), 0);
        assert_eq!(super::crc32c_append(super::crc32c(b"1234"), b"56789"), 0xe306_9283);
    }

    proptest! {
        /// The same values as the crc32c crate (what earlier versions wrote to disk),
        /// whole and appended at any cut.
        #[test]
        fn matches_crc32c_crate(data in proptest::collection::vec(any::<u8>(), 0..70_000), cut in any::<prop::sample::Index>()) {
            prop_assert_eq!(super::crc32c(&data), crc32c::crc32c(&data));
            let at = cut.index(data.len() + 1);
            let pre = super::crc32c(&data[..at]);
            prop_assert_eq!(super::crc32c_append(pre, &data[at..]), crc32c::crc32c(&data));
        }
    }
}
