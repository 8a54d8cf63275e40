//! The error type that bodies and upstream exchanges carry: whatever
//! failed, boxed. The lowest room of the crate; it imports nothing.

/// Errors of bodies and upstream exchanges.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
