//! HTTP/1.1, in three rooms: the codec both sides share (`codec.rs`), the
//! server that takes client connections (`server.rs`) and the client that
//! talks to upstreams (`client.rs`). The server and the client never
//! import each other; what they share lives in the codec.

pub(crate) mod client;
pub(crate) mod codec;
pub(crate) mod server;
