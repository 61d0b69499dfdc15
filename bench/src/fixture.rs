//! A scratch world for the edge handler measurements: a key store (authority, ops, one bound
//! edge key), an open election, the component's signed bundle manifest and the bodies of valid
//! votes of distinct voters.

use std::path::{Path, PathBuf};

use edgevote_shared::{
    BundleManifest, Digest32, ElectionManifest, ElectionOption, Limits, Platform, Policy, Role,
    VoteToken, b64, sign,
};
use edgevote_signer::KeyStore;

use crate::BenchError;

/// The fixture's election id.
pub const ELECTION: &str = "bench";
/// The fixture's edge and region (its edge key is bound to them).
pub const EDGE: (&str, &str) = ("edge-b", "r1");

/// Keys, an election, a signed bundle and vote bodies in a temporary directory.
pub struct Fixture {
    /// The directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The key store in `dir/keys`.
    pub store: KeyStore,
    /// The election.
    pub manifest: ElectionManifest,
    /// The election as signed (compact JWS), also in `dir/election.jws`.
    pub signed_manifest: String,
    /// The component (its bundle manifest is `dir/bundle.jws`).
    pub component: PathBuf,
    /// JSON bodies of valid ballots, one voter each.
    pub bodies: Vec<Vec<u8>>,
}

/// A component with its bundle manifest, signed by the fixture's ops key: what a host is
/// configured with.
#[derive(Debug, Clone)]
pub struct SignedComponent {
    /// The component.
    pub wasm: PathBuf,
    /// Its signed bundle manifest (compact JWS).
    pub bundle: PathBuf,
}

fn now_secs() -> u64 {
    edgevote_signer::clock::now_secs()
}

fn signed<T: edgevote_shared::Document>(
    identity: &edgevote_shared::SigningIdentity,
    doc: &T,
    what: &'static str,
) -> Result<String, BenchError> {
    sign(identity, doc).map_err(|source| BenchError::Refused { what, source })
}

fn write(path: PathBuf, contents: &str) -> Result<(), BenchError> {
    std::fs::write(&path, contents).map_err(|source| BenchError::Fixture { path, source })
}

impl Fixture {
    /// A fixture with `votes` vote bodies, for the component at `component`.
    pub fn new(votes: usize, component: &Path) -> Result<Fixture, BenchError> {
        let dir = tempfile::tempdir().map_err(|source| BenchError::Fixture {
            path: std::env::temp_dir(),
            source,
        })?;
        let store = KeyStore::open_or_create(dir.path().join("keys"))?;
        for role in [Role::Authority, Role::Ops] {
            store.generate(role, now_secs() - 60)?;
        }
        store.generate_edge(EDGE.0, EDGE.1, now_secs() - 60)?;
        let authority = store.signing_identity(Role::Authority, None)?;
        let manifest = election();
        let signed_manifest = signed(&authority, &manifest, "election")?;
        write(dir.path().join("election.jws"), &signed_manifest)?;
        sign_bundle(&store, component, dir.path().join("bundle.jws"))?;
        let bodies = (0..votes)
            .map(|i| vote_body(&authority, i))
            .collect::<Result<_, _>>()?;
        Ok(Fixture {
            dir,
            store,
            manifest,
            signed_manifest,
            component: component.to_owned(),
            bodies,
        })
    }
}

impl Fixture {
    /// The fixture's own component, with `dir/bundle.jws`.
    pub fn signed_component(&self) -> SignedComponent {
        SignedComponent {
            wasm: self.component.clone(),
            bundle: self.dir.path().join("bundle.jws"),
        }
    }

    /// Another build of the component (e.g. the wide-arithmetic one), its bundle manifest
    /// signed by the fixture's ops key into `dir/bundle-{name}.jws`.
    pub fn sign_component(&self, wasm: &Path, name: &str) -> Result<SignedComponent, BenchError> {
        let bundle = self.dir.path().join(format!("bundle-{name}.jws"));
        sign_bundle(&self.store, wasm, bundle.clone())?;
        Ok(SignedComponent {
            wasm: wasm.to_owned(),
            bundle,
        })
    }
}

/// Signs the bundle manifest of the component at `wasm` with the ops key into `out`.
fn sign_bundle(store: &KeyStore, wasm: &Path, out: PathBuf) -> Result<(), BenchError> {
    let bytes = std::fs::read(wasm).map_err(|source| BenchError::NoComponent {
        path: wasm.to_owned(),
        source,
    })?;
    let ops = store.signing_identity(Role::Ops, None)?;
    let bundle = signed(&ops, &bundle_manifest(&bytes), "bundle manifest")?;
    write(out, &bundle)
}

fn election() -> ElectionManifest {
    ElectionManifest {
        v: 1,
        id: ELECTION.into(),
        title: "Bench".into(),
        options: vec![ElectionOption {
            id: "yes".into(),
            label: "Yes".into(),
        }],
        opens_at: now_secs() - 60,
        closes_at: now_secs() + 3600,
        policy: Policy::FirstVoteWins,
        limits: Limits::default(),
        created_at: now_secs() - 60,
    }
}

fn bundle_manifest(wasm: &[u8]) -> BundleManifest {
    BundleManifest {
        v: 1,
        name: "edge".into(),
        version: "1".into(),
        serial: 1,
        platform: Platform::WasiHttp,
        wasm_sha256: Digest32::of(wasm),
        wasm_bytes: wasm.len() as u64,
        config_schema: vec![],
        created_at: now_secs() - 30,
    }
}

/// The ballot of voter `i`, as JSON.
fn vote_body(
    authority: &edgevote_shared::SigningIdentity,
    i: usize,
) -> Result<Vec<u8>, BenchError> {
    let token = VoteToken {
        jti: format!("t{i}"),
        sub: format!("v{i}"),
        aud: ELECTION.into(),
        iat: now_secs() - 30,
        nbf: now_secs() - 30,
        exp: now_secs() + 3600,
    };
    Ok(serde_json::json!({
        "election": ELECTION,
        "token": signed(authority, &token, "token")?,
        "choice": "yes",
        "nonce": b64::encode((i as u128).to_le_bytes()),
    })
    .to_string()
    .into_bytes())
}
