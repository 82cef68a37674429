//! The file system client library: an MDS session for metadata (path walk by lookups,
//! every namespace op) and direct object I/O to the OSDs for file data, striped by each
//! file's layout. Used by `cephr fs ...` commands and tests.
//!
//! Consistency model (no caps yet): each op is a synchronous request to rank 0; the
//! client caches dentries for a few seconds and drops its own stale ones on
//! unlink/rmdir/rename; file size and mtime reach the MDS by `SetSize` after writes.
pub mod data;
pub mod file;
pub mod fuse;
pub mod fuse_map;
pub mod fuse_ops;
pub mod fuse_session;
pub mod ops;
pub mod path;
pub mod session;
pub mod striping;

pub use session::errno_text;

/// A mounted file system. Cheap to clone; every clone shares the one session.
#[derive(Clone)]
pub struct Client {
    inner: std::sync::Arc<session::Inner>,
}
