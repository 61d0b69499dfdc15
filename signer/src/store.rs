//! The key store: a directory holding the published key set and the private keys.
//!
//! ```text
//! <dir>/keyset.json          public JWK Set: every key ever used, active and archived (0644)
//! <dir>/private/<kid>.jwk    one private key per file (0600, directory 0700)
//! ```
//!
//! Rotation never deletes: the old key gets a `valid_until` and stays in `keyset.json`, so
//! every document it signed before then keeps verifying.
//!
//! Rotation has a grace period: the successor is published valid from *now*, and the old key
//! stays valid until *now + grace*, so that an edge still signing with it (it re-reads the key
//! set and its key file every few seconds) keeps producing documents collectors accept until it
//! has switched. An edge that follows a store reads its key from a stable file,
//! `private/<edge>@<region>.current.jwk` ([`KeyStore::write_current_edge_key`]); rotating an
//! edge key rewrites that file, if present, with the successor, after the key set that
//! publishes the successor is written.

use std::fs;
use std::path::{Path, PathBuf};

use edgevote_shared::{KeySet, PublicJwk, Role, SigningIdentity};

use crate::error::SignerError;
use crate::keyfile;
use crate::random;

/// File name of the public key set inside a store.
pub const KEYSET_FILE: &str = "keyset.json";
const PRIVATE_DIR: &str = "private";

/// A key store directory.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    /// Opens an existing store.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SignerError> {
        let dir = dir.into();
        if !dir.join(KEYSET_FILE).is_file() {
            return Err(SignerError::NoKeyStore(dir));
        }
        Ok(KeyStore { dir })
    }

    /// Opens a store, creating an empty one if `dir` has none.
    pub fn open_or_create(dir: impl Into<PathBuf>) -> Result<Self, SignerError> {
        let dir = dir.into();
        let store = KeyStore { dir };
        if !store.keyset_path().is_file() {
            create_private_dir(&store.dir.join(PRIVATE_DIR))?;
            store.save_keyset(&KeySet::default())?;
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the published key set.
    pub fn keyset_path(&self) -> PathBuf {
        self.dir.join(KEYSET_FILE)
    }

    /// Loads and checks the key set.
    pub fn keyset(&self) -> Result<KeySet, SignerError> {
        load_keyset(&self.keyset_path())
    }

    /// Generates a new key of `role`, valid from `now_secs`, and adds it to the set. Edge keys
    /// are bound to one edge: use [`KeyStore::generate_edge`].
    pub fn generate(&self, role: Role, now_secs: u64) -> Result<PublicJwk, SignerError> {
        if role == Role::Edge {
            return Err(SignerError::EdgeKeyUnbound);
        }
        self.generate_bound(role, None, now_secs)
    }

    /// Generates a new edge key for `edge` in `region`, valid from `now_secs`: the key set
    /// binds it to them, so it can sign receipts and envelopes for that edge only.
    pub fn generate_edge(
        &self,
        edge: &str,
        region: &str,
        now_secs: u64,
    ) -> Result<PublicJwk, SignerError> {
        self.generate_bound(Role::Edge, Some((edge, region)), now_secs)
    }

    fn generate_bound(
        &self,
        role: Role,
        binding: Option<(&str, &str)>,
        now_secs: u64,
    ) -> Result<PublicJwk, SignerError> {
        let seed = zeroize::Zeroizing::new(random::bytes::<32>()?);
        let identity = SigningIdentity::from_seed(&seed, role);
        let mut jwk = identity.public_jwk(now_secs);
        if let Some((edge, region)) = binding {
            jwk = jwk.bound_to(edge, region);
        }
        let mut set = self.keyset()?;
        set.insert(jwk.clone())?; // checks the binding before anything is written
        keyfile::write(&self.private_path(identity.kid()), &identity)?;
        self.save_keyset(&set)?;
        Ok(jwk)
    }

    /// The private key of the active edge key bound to `edge` in `region`.
    pub fn edge_identity(&self, edge: &str, region: &str) -> Result<SigningIdentity, SignerError> {
        let set = self.keyset()?;
        let kid = set
            .active(Role::Edge)
            .find(|j| j.binding() == Some((edge, region)))
            .map(|j| j.kid.clone())
            .ok_or_else(|| SignerError::NoEdgeKey {
                edge: edge.to_owned(),
                region: region.to_owned(),
            })?;
        self.signing_identity(Role::Edge, Some(&kid))
    }

    /// Rotates key `kid`: a new key of the same role (and, for an edge key, bound to the same
    /// edge) is published valid from `now_secs`, and `kid` stays valid until `now_secs +
    /// grace_secs`, then is archived. The key set holding the successor is written before
    /// anything points to it: an edge key's stable current file
    /// ([`KeyStore::current_edge_key_path`]), if there is one, is rewritten afterwards. A grace
    /// of 0 ends the old key at once (revocation). Returns the new key.
    pub fn rotate(
        &self,
        kid: &str,
        now_secs: u64,
        grace_secs: u64,
    ) -> Result<PublicJwk, SignerError> {
        let mut set = self.keyset()?;
        let (old, _) = set
            .get(kid)
            .ok_or_else(|| SignerError::UnknownKey(kid.to_owned()))?;
        if old.valid_until.is_some() {
            return Err(SignerError::AlreadyRetired(kid.to_owned()));
        }
        let (role, binding) = (old.edgevote_role, old.binding());
        let new = self.generate_bound(role, binding, now_secs)?;
        set.insert(new.clone())?;
        set.retire(kid, now_secs.saturating_add(grace_secs))?;
        self.save_keyset(&set)?;
        if let Some((edge, region)) = new.binding()
            && self.current_edge_key_path(edge, region).is_file()
        {
            self.write_current_edge_key(edge, region)?;
        }
        Ok(new)
    }

    /// The stable file an edge following this store reads its key from:
    /// `private/<edge>@<region>.current.jwk` (0600). It always holds the edge's active key:
    /// [`KeyStore::write_current_edge_key`] creates it and [`KeyStore::rotate`] rewrites it.
    pub fn current_edge_key_path(&self, edge: &str, region: &str) -> PathBuf {
        self.dir
            .join(PRIVATE_DIR)
            .join(format!("{edge}@{region}.current.jwk"))
    }

    /// Writes the active key of `edge` in `region` to its stable current file (atomically,
    /// 0600) and returns the file's path.
    pub fn write_current_edge_key(&self, edge: &str, region: &str) -> Result<PathBuf, SignerError> {
        let identity = self.edge_identity(edge, region)?;
        let path = self.current_edge_key_path(edge, region);
        keyfile::write(&path, &identity)?;
        Ok(path)
    }

    /// The one active key of `role`, or the active key `kid` when given.
    pub fn active_kid(&self, role: Role, kid: Option<&str>) -> Result<String, SignerError> {
        let set = self.keyset()?;
        let active: Vec<&PublicJwk> = set.active(role).collect();
        match (kid, active.as_slice()) {
            (Some(kid), _) => active
                .iter()
                .find(|j| j.kid == kid)
                .map(|j| j.kid.clone())
                .ok_or_else(|| SignerError::UnknownKey(format!("{kid} (active {role})"))),
            (None, []) => Err(SignerError::NoActiveKey(role)),
            (None, [one]) => Ok(one.kid.clone()),
            (None, many) => Err(SignerError::AmbiguousActiveKey {
                role,
                count: many.len(),
            }),
        }
    }

    /// Loads the private key of the active key of `role` (or `kid`).
    pub fn signing_identity(
        &self,
        role: Role,
        kid: Option<&str>,
    ) -> Result<SigningIdentity, SignerError> {
        let kid = self.active_kid(role, kid)?;
        let identity = keyfile::read(&self.private_path(&kid))?;
        if identity.role() != role {
            return Err(SignerError::KeyFileFormat {
                path: self.private_path(&kid),
                reason: format!("role {} where {role} was expected", identity.role()),
            });
        }
        Ok(identity)
    }

    /// The private key file of `kid` (0600).
    pub fn private_key_path(&self, kid: &str) -> PathBuf {
        self.private_path(kid)
    }

    fn private_path(&self, kid: &str) -> PathBuf {
        self.dir.join(PRIVATE_DIR).join(format!("{kid}.jwk"))
    }

    fn save_keyset(&self, set: &KeySet) -> Result<(), SignerError> {
        let text = set.to_json_pretty() + "\n";
        keyfile::write_atomic(&self.keyset_path(), text.as_bytes(), 0o644)
    }
}

/// Loads and checks a published key set file.
pub fn load_keyset(path: &Path) -> Result<KeySet, SignerError> {
    let bytes = keyfile::read_bounded(path, edgevote_shared::keys::MAX_KEY_SET_BYTES as u64)?;
    KeySet::parse(&bytes).map_err(|e| SignerError::KeyFileFormat {
        path: path.into(),
        reason: format!("{} ({})", e, e.code()),
    })
}

fn create_private_dir(path: &Path) -> Result<(), SignerError> {
    fs::create_dir_all(path).map_err(SignerError::io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(SignerError::io(path))?;
    }
    Ok(())
}
