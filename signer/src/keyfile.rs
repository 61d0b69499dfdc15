//! Private key files: one JWK (RFC 8037 private OKP form, with `d`) per file, mode 0600,
//! written atomically (temp file, fsync, rename).

use std::fs;
use std::io::Write;
use std::path::Path;

use edgevote_shared::{PublicJwk, Role, SigningIdentity, b64};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::SignerError;

/// Longest key file we read.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// The on-disk form of a private key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateJwk {
    #[serde(flatten)]
    public: PublicJwkFields,
    /// The 32-byte secret seed, base64url.
    d: String,
}

/// The public members stored next to `d` (validity lives in the key set, not here).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicJwkFields {
    kty: String,
    crv: String,
    x: String,
    kid: String,
    alg: String,
    #[serde(rename = "use")]
    use_: String,
    edgevote_role: Role,
}

/// Writes `identity` to `path` with mode 0600 (never readable by others, even briefly).
pub fn write(path: &Path, identity: &SigningIdentity) -> Result<(), SignerError> {
    let jwk = PublicJwk::new(&identity.verifying_key(), identity.role(), 0);
    let private = PrivateJwk {
        public: PublicJwkFields {
            kty: jwk.kty,
            crv: jwk.crv,
            x: jwk.x,
            kid: jwk.kid,
            alg: jwk.alg,
            use_: jwk.use_,
            edgevote_role: identity.role(),
        },
        d: b64::encode(identity.seed()),
    };
    let text = Zeroizing::new(serde_json::to_vec_pretty(&private).map_err(|e| {
        SignerError::KeyFileFormat {
            path: path.into(),
            reason: e.to_string(),
        }
    })?);
    write_atomic(path, &text, 0o600)
}

/// Reads a private key file, refusing group/other permissions and checking that `d`, `x` and
/// `kid` agree.
pub fn read(path: &Path) -> Result<SigningIdentity, SignerError> {
    check_private_mode(path)?;
    let bytes = Zeroizing::new(read_bounded(path, MAX_KEY_FILE_BYTES)?);
    let bad = |reason: String| SignerError::KeyFileFormat {
        path: path.into(),
        reason,
    };
    let private: PrivateJwk = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let seed =
        Zeroizing::new(b64::decode_array::<32>("d", &private.d).map_err(|e| bad(e.to_string()))?);
    let identity = SigningIdentity::from_seed(&seed, private.public.edgevote_role);
    let public = identity.public_jwk(0);
    if public.x != private.public.x || public.kid != private.public.kid {
        return Err(bad("`d` does not match `x`/`kid`".into()));
    }
    Ok(identity)
}

/// Reads at most `max` bytes of a file, erroring if it is longer.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, SignerError> {
    let len = fs::metadata(path).map_err(SignerError::io(path))?.len();
    if len > max {
        return Err(SignerError::KeyFileFormat {
            path: path.into(),
            reason: format!("{len} bytes, more than {max}"),
        });
    }
    fs::read(path).map_err(SignerError::io(path))
}

/// Writes `bytes` to `path` atomically with permission `mode`: a temp file in the same
/// directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignerError> {
    // A bare file name's parent is "": that is the current directory.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = open_with_mode(&tmp, mode)?;
    file.write_all(bytes).map_err(SignerError::io(&tmp))?;
    file.sync_all().map_err(SignerError::io(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(SignerError::io(path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SignerError::io(dir))
}

#[cfg(unix)]
fn open_with_mode(path: &Path, mode: u32) -> Result<fs::File, SignerError> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|file| {
            // A leftover temp file keeps its old mode on open; force ours.
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            Ok(file)
        })
        .map_err(SignerError::io(path))
}

#[cfg(not(unix))]
fn open_with_mode(path: &Path, _mode: u32) -> Result<fs::File, SignerError> {
    fs::File::create(path).map_err(SignerError::io(path))
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> Result<(), SignerError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(SignerError::io(path))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SignerError::KeyFilePermissions {
            path: path.into(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path) -> Result<(), SignerError> {
    Ok(())
}
