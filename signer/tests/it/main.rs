//! Integration tests of the signer: key store, key files, issuing.

mod issuing;
mod key_files;
mod key_store;
