//! One module per subcommand.

pub(crate) mod crdgen;
pub(crate) mod inspect;
pub(crate) mod migrate;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod standalone;
pub(crate) mod validate;
