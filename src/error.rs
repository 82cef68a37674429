//! Error types shared by the core: parse errors for user input, and the errno-coded
//! command error that travels back to the CLI (`Error ENOENT: pool 'x' does not exist`).
use serde::{Deserialize, Serialize};
use std::fmt;

/// A piece of user input that does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid {what} '{input}': {why}")]
pub struct ParseError {
    pub what: String,
    pub input: String,
    pub why: String,
}

impl ParseError {
    pub fn new(what: &str, input: &str, why: &str) -> Self {
        ParseError { what: what.into(), input: input.into(), why: why.into() }
    }
}

/// POSIX-style error codes carried by command and request replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Errno {
    EPERM,
    ENOENT,
    EIO,
    EAGAIN,
    EACCES,
    EBUSY,
    EEXIST,
    EXDEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENOSPC,
    ERANGE,
    ENAMETOOLONG,
    ENOTEMPTY,
    ENOTSUP,
    ETIMEDOUT,
    EDQUOT,
    ESTALE,
    ENOTCONN,
    /// No such attribute (Linux ENODATA, returned for a missing xattr).
    ENODATA,
    /// Too many links.
    EMLINK,
    /// Ceph's EBLOCKLISTED (ESHUTDOWN): the instance is blocklisted.
    EBLOCKLISTED,
    /// File too large.
    EFBIG,
    /// A message (request or reply) larger than the messenger may carry.
    EMSGSIZE,
}

impl Errno {
    pub fn code(&self) -> i32 {
        match self {
            Errno::EPERM => 1,
            Errno::ENOENT => 2,
            Errno::EIO => 5,
            Errno::EAGAIN => 11,
            Errno::EACCES => 13,
            Errno::EBUSY => 16,
            Errno::EEXIST => 17,
            Errno::EXDEV => 18,
            Errno::ENOTDIR => 20,
            Errno::EISDIR => 21,
            Errno::EINVAL => 22,
            Errno::ENOSPC => 28,
            Errno::ERANGE => 34,
            Errno::ENAMETOOLONG => 36,
            Errno::ENOTEMPTY => 39,
            Errno::ENOTSUP => 95,
            Errno::ETIMEDOUT => 110,
            Errno::EDQUOT => 122,
            Errno::ESTALE => 116,
            Errno::ENOTCONN => 107,
            Errno::ENODATA => 61,
            Errno::EMLINK => 31,
            Errno::EBLOCKLISTED => 108,
            Errno::EFBIG => 27,
            Errno::EMSGSIZE => 90,
        }
    }
}

/// An error answer to a command: errno plus a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct CmdError {
    pub errno: Errno,
    pub message: String,
}

impl CmdError {
    pub fn new(errno: Errno, message: impl Into<String>) -> Self {
        CmdError { errno, message: message.into() }
    }
    pub fn enoent(m: impl Into<String>) -> Self {
        Self::new(Errno::ENOENT, m)
    }
    pub fn einval(m: impl Into<String>) -> Self {
        Self::new(Errno::EINVAL, m)
    }
    pub fn eexist(m: impl Into<String>) -> Self {
        Self::new(Errno::EEXIST, m)
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error {:?}: {}", self.errno, self.message)
    }
}
