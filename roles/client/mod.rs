//! The file system client library: an MDS session for metadata (path walk by lookups,
//! every namespace op) and direct object I/O to the OSDs for file data, striped by each
//! file's layout. Used by `cephr fs ...` commands and tests.
//!
//! Consistency model: caps (`caps.rs`). Attributes and dentries are served from the
//! cache while the MDS's caps allow it (`As`/`Fs`/`Ls` on the inode, `Fs` on the
//! parent directory) and dropped when they are revoked; file data is cached under
//! `Fc` and buffered under `Fb`; size and mtime reach the MDS in cap flushes; an inode's
//! xattrs are cached under `Xs` (`xattrs.rs`). Caps are trusted only while the session's
//! renewals are acknowledged in time (`lease.rs`).
pub mod async_ops;
pub mod behind;
pub mod caps;
pub mod data;
pub mod file;
pub mod fuse;
pub mod fuse_map;
pub mod fuse_ops;
pub mod fuse_session;
pub mod lease;
pub mod ops;
pub mod path;
pub mod session;
pub mod striping;
pub mod xattrs;

pub use session::errno_text;

/// A mounted file system. Cheap to clone; every clone shares the one session.
#[derive(Clone)]
pub struct Client {
    inner: std::sync::Arc<session::Inner>,
}
