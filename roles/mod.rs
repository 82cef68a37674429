//! One module per daemon role. Each role's pure logic is testable without a network;
//! its actors are thin and call into that logic.
pub mod client;
pub mod mds;
pub mod mon;
pub mod osd;
