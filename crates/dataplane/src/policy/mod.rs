//! Edge policies at request time, a file each: client address lists
//! (`access.rs`), credentials (`credentials.rs`: API keys, basic users,
//! and JWTs in `jwt.rs`), external authorization (`external.rs`), CORS
//! (`cors.rs`) and request validation (`validation.rs`). Their
//! configuration comes compiled in the snapshot; what they keep at run
//! time (verified basic credentials, fetched key sets) is theirs.
//! Credentials are compared by digest in constant time, stripped before
//! the request goes upstream, and never logged.

mod access;
mod cors;
mod credentials;
mod external;
mod jwt;
pub(crate) mod validation;

pub(crate) use self::access::check_access;
pub(crate) use self::cors::{preflight, response_headers};
pub(crate) use self::credentials::{BasicCache, Passed, authenticate};
pub(crate) use self::external::{AuthClient, auth_client, external};
pub(crate) use self::jwt::JwksCache;
