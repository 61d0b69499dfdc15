//! edgevote key management and document issuing.
//!
//! - [`store::KeyStore`]: a directory with the published key set (`keyset.json`) and private
//!   keys (one 0600 JWK file each); generation and rotation with archived old keys.
//! - [`issue`]: vote tokens (one, or millions in parallel), receipts.
//! - Verification is [`edgevote_shared::verify`]; this crate re-exports it for convenience.
//!
//! Unlike `edgevote-shared`, this crate touches the file system and the OS random number
//! generator, so it is for native tools (the CLI, test harnesses), not for Wasm.

pub mod clock;
pub mod error;
pub mod issue;
pub mod keyfile;
pub mod random;
pub mod store;

pub use edgevote_shared::{sign, verify};
pub use error::SignerError;
pub use store::{KeyStore, load_keyset};
