//! A complete edge: keys, an election, a signed bundle of the built component, a queue.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use edgevote_edge_host::config::HostConfig;
use edgevote_edge_host::{Background, EdgeHost};
use edgevote_queue::embedded::{EmbeddedQueue, EmbeddedQueueConfig};
use edgevote_queue::{DeadLetter, Queue, QueueError, QueueStats, Received};
use edgevote_shared::{
    BundleManifest, Digest32, ElectionManifest, ElectionOption, Limits, Platform, Policy, Role,
    SigningIdentity, VoteToken, sign,
};
use edgevote_signer::KeyStore;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The built edge component; built once (release, wasm32-wasip2) if missing.
pub fn component() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    built("spin", "edgevote_edge_spin.wasm", &BUILT)
}

/// The component's wide-arithmetic build (our host only), built once per test run.
pub fn wide_component() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    built("wide", "edgevote_edge_wide.wasm", &BUILT)
}

/// The hostile test component (`tests/rogue`), built once per test run.
pub fn rogue_component() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    built("rogue", "edgevote_rogue_component.wasm", &BUILT)
}

/// Runs `scripts/build-wasm.sh {what}` the first time `once` is seen; the path of `file`.
fn built(what: &str, file: &str, once: &Mutex<bool>) -> PathBuf {
    let path = root().join("target/wasm32-wasip2/release").join(file);
    let mut done = once.lock().unwrap_or_else(|p| p.into_inner());
    if !*done {
        let status = std::process::Command::new("bash")
            .arg(root().join("scripts/build-wasm.sh"))
            .arg(what)
            .status()
            .expect("run scripts/build-wasm.sh");
        assert!(status.success(), "scripts/build-wasm.sh {what} failed");
        *done = true;
    }
    assert!(path.is_file(), "no component at {}", path.display());
    path
}

pub fn now_secs() -> u64 {
    edgevote_signer::clock::now_ms() / 1000
}

/// Files of one edge deployment in a temp dir.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub store: KeyStore,
    pub authority: SigningIdentity,
}

impl Deployment {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open_or_create(dir.path().join("keys")).unwrap();
        let now = now_secs() - 600;
        for role in [Role::Authority, Role::Ops] {
            store.generate(role, now).unwrap();
        }
        store.generate_edge("edge-t1", "r1", now).unwrap();
        let authority = store.signing_identity(Role::Authority, None).unwrap();
        for (id, opens, closes) in [
            ("open", now, now + 7200),
            ("closed", now - 100, now - 50),
            ("other", now, now + 7200),
        ] {
            let manifest = ElectionManifest {
                v: 1,
                id: id.into(),
                title: "Test".into(),
                options: ["yes", "no"]
                    .iter()
                    .map(|o| ElectionOption {
                        id: (*o).into(),
                        label: (*o).into(),
                    })
                    .collect(),
                opens_at: opens,
                closes_at: closes,
                policy: Policy::FirstVoteWins,
                limits: Limits::default(),
                created_at: now,
            };
            std::fs::write(
                dir.path().join(format!("{id}.jws")),
                sign(&authority, &manifest).unwrap(),
            )
            .unwrap();
        }
        let deployment = Deployment {
            dir,
            store,
            authority,
        };
        deployment.sign_bundle(&std::fs::read(component()).unwrap(), Role::Ops);
        deployment
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Signs a bundle manifest (serial 1) for `wasm` with a key of `role` into bundle.jws: the
    /// deployment's ops key, or for another role a key outside the key set.
    pub fn sign_bundle(&self, wasm: &[u8], role: Role) {
        let signer = match role {
            Role::Ops => self.store.signing_identity(Role::Ops, None).unwrap(),
            other => SigningIdentity::from_seed(&[3; 32], other),
        };
        std::fs::write(
            self.path("bundle.jws"),
            self.bundle_manifest(wasm, &signer, 1),
        )
        .unwrap();
    }

    /// Runs `config`'s host on the component at `wasm` instead, with its bundle signed by the
    /// deployment's ops key.
    pub fn use_component(&self, config: &mut HostConfig, wasm: PathBuf) {
        self.sign_bundle(&std::fs::read(&wasm).unwrap(), Role::Ops);
        config.component_path = wasm;
    }

    /// A signed bundle manifest for `wasm` with `serial`, signed by `signer` whatever its role.
    pub fn bundle_manifest(&self, wasm: &[u8], signer: &SigningIdentity, serial: u64) -> String {
        let manifest = BundleManifest {
            v: 1,
            name: "edge".into(),
            version: format!("1.{serial}"),
            serial,
            platform: Platform::WasiHttp,
            wasm_sha256: Digest32::of(wasm),
            wasm_bytes: wasm.len() as u64,
            config_schema: vec![],
            created_at: now_secs() - 60,
        };
        edgevote_shared::jws::sign(signer, &manifest)
            .unwrap_or_else(|_| raw_sign(signer, &manifest))
    }

    /// The deployment's key of `role` (in its key set).
    pub fn key(&self, role: Role) -> SigningIdentity {
        self.store.signing_identity(role, None).unwrap()
    }

    pub fn config(&self, spill: bool) -> HostConfig {
        let edge_kid = self.store.active_kid(Role::Edge, None).unwrap();
        let text = format!(
            r#"
listen_addr = "127.0.0.1:0"
edge_id = "edge-t1"
region = "r1"
component_path = "{component}"
bundle_manifest_path = "{dir}/bundle.jws"
keyset_path = "{dir}/keys/keyset.json"
election_paths = ["{dir}/open.jws", "{dir}/closed.jws", "{dir}/other.jws"]
edge_key_path = "{dir}/keys/private/{edge_kid}.jwk"
max_concurrent_requests = 64
[group_commit]
max_wait_ms = 5
[spill]
enabled = {spill}
path = "{dir}/spill.redb"
[queue]
backend = "embedded"
path = "{dir}/queue.redb"
"#,
            component = component().display(),
            dir = self.dir.path().display(),
        );
        HostConfig::parse(&text).unwrap()
    }

    pub fn token(&self, election: &str, voter: &str, exp: u64) -> String {
        let claims = VoteToken {
            jti: format!("t-{voter}"),
            sub: voter.into(),
            aud: election.into(),
            iat: now_secs() - 30,
            nbf: now_secs() - 30,
            exp,
        };
        sign(&self.authority, &claims).unwrap()
    }

    pub fn keyset(&self) -> edgevote_shared::KeySet {
        self.store.keyset().unwrap()
    }
}

/// Signs a document even with a key whose role does not match (to build forged bundles).
fn raw_sign<T: serde::Serialize>(signer: &SigningIdentity, doc: &T) -> String {
    let header = format!(
        r#"{{"alg":"EdDSA","kid":"{}","typ":"edgevote-bundle+jws"}}"#,
        signer.kid()
    );
    let input = format!(
        "{}.{}",
        edgevote_shared::b64::encode(header),
        edgevote_shared::b64::encode(serde_json::to_vec(doc).unwrap())
    );
    let signature = signer.sign_message(input.as_bytes());
    format!("{input}.{}", edgevote_shared::b64::encode(signature))
}

/// Waits (bounded: 10 s, looking every 10 ms) until `done` holds; panics naming `what`.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never came: {what}");
}

/// The vote ids of the votes in these queue envelopes, in order (a vote queued twice is here
/// twice).
pub fn vote_ids_in(envelopes: &[String]) -> Vec<Digest32> {
    envelopes
        .iter()
        .flat_map(|e| {
            edgevote_shared::decode_unverified::<edgevote_shared::QueueEnvelope>(e)
                .unwrap()
                .votes
        })
        .map(|v| {
            let jti = edgevote_shared::decode_unverified::<VoteToken>(&v.ballot.token)
                .unwrap()
                .jti;
            v.ballot.vote_id(&jti)
        })
        .collect()
}

/// An embedded queue that can be switched off, to stand in for an unreachable region queue.
pub struct SwitchableQueue {
    pub inner: EmbeddedQueue,
    pub down: AtomicBool,
    /// Sends wait here while it is closed ([`SwitchableQueue::hold_sends`]).
    sends_open: tokio::sync::watch::Sender<bool>,
    /// How long each send takes at least, milliseconds ([`SwitchableQueue::slow_sends`]).
    send_delay_ms: AtomicU64,
    /// Sends now waiting for [`SwitchableQueue::release_sends`].
    sends_held: AtomicU64,
}

impl SwitchableQueue {
    pub fn open(path: &Path) -> Arc<Self> {
        Arc::new(SwitchableQueue {
            inner: EmbeddedQueue::open(&EmbeddedQueueConfig {
                path: path.to_owned(),
                max_receives: 5,
            })
            .unwrap(),
            down: AtomicBool::new(false),
            sends_open: tokio::sync::watch::Sender::new(true),
            send_delay_ms: AtomicU64::new(0),
            sends_held: AtomicU64::new(0),
        })
    }

    /// Makes every send take at least `delay` (zero: as fast as the queue is).
    pub fn slow_sends(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        self.send_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Makes every send wait (a slow queue) until [`SwitchableQueue::release_sends`].
    pub fn hold_sends(&self) {
        self.sends_open.send_replace(false);
    }

    /// Lets held and later sends through.
    pub fn release_sends(&self) {
        self.sends_open.send_replace(true);
    }

    /// How many sends [`SwitchableQueue::hold_sends`] holds now.
    pub fn sends_held(&self) -> u64 {
        self.sends_held.load(Ordering::SeqCst)
    }

    /// Waits (bounded: 10 s) until `count` sends are held by [`SwitchableQueue::hold_sends`].
    pub async fn until_sends_held(&self, count: u64) {
        until(&format!("{count} sends held at once"), || {
            self.sends_held() == count
        })
        .await;
    }

    fn check(&self) -> Result<(), QueueError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueueError::backend("send", "queue unreachable (test)"));
        }
        Ok(())
    }

    /// Every envelope currently in the queue (receives and releases them).
    pub async fn envelopes(&self) -> Vec<String> {
        let mut out = Vec::new();
        // Bounded: the tests put at most a few hundred messages in.
        for _ in 0..100 {
            let batch = self
                .inner
                .receive(10, Duration::ZERO, Duration::from_secs(60))
                .await
                .unwrap();
            if batch.is_empty() {
                break;
            }
            for message in batch {
                out.extend(message.body.lines().map(str::to_owned));
            }
        }
        out
    }

    /// Every vote in the queue's envelopes (receives and releases them): one per envelope
    /// under component sealing, a group commit's worth under host sealing.
    pub async fn votes(&self) -> Vec<edgevote_shared::EnvelopeVote> {
        self.envelopes()
            .await
            .iter()
            .flat_map(|e| {
                edgevote_shared::decode_unverified::<edgevote_shared::QueueEnvelope>(e)
                    .unwrap()
                    .votes
            })
            .collect()
    }
}

#[async_trait]
impl Queue for SwitchableQueue {
    async fn send_batch(&self, bodies: Vec<String>) -> Result<Vec<String>, QueueError> {
        let mut open = self.sends_open.subscribe();
        self.sends_held.fetch_add(1, Ordering::SeqCst);
        // The sender lives in `self`, so the wait ends only by a release.
        let _ = open.wait_for(|open| *open).await;
        self.sends_held.fetch_sub(1, Ordering::SeqCst);
        let delay = self.send_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.check()?;
        self.inner.send_batch(bodies).await
    }
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        self.inner.receive(max, wait, visibility).await
    }
    async fn delete_batch(&self, handles: Vec<String>) -> Result<(), QueueError> {
        self.inner.delete_batch(handles).await
    }
    async fn change_visibility(
        &self,
        handles: Vec<String>,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.inner.change_visibility(handles, visibility).await
    }
    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        self.inner.dead_letter(message, reason).await
    }
    async fn peek_dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.peek_dead_letters(max).await
    }
    async fn stats(&self) -> Result<QueueStats, QueueError> {
        self.inner.stats().await
    }
}

/// A host serving on 127.0.0.1:0 until dropped.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub host: Arc<EdgeHost>,
    pub queue: Arc<SwitchableQueue>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    background: Option<Background>,
}

impl Running {
    pub async fn start(deployment: &Deployment, spill: bool) -> Self {
        Self::start_with(deployment, deployment.config(spill)).await
    }

    /// A host with an edited configuration.
    pub async fn start_with(deployment: &Deployment, config: HostConfig) -> Self {
        let queue = SwitchableQueue::open(&deployment.path("queue.redb"));
        let (host, background) = edgevote_edge_host::start_with_queue(&config, queue.clone())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(edgevote_edge_host::server::serve(
            listener,
            Arc::clone(&host),
            async move {
                let _ = stopped.await;
            },
        ));
        Running {
            addr,
            host,
            queue,
            stop: Some(stop),
            server: Some(server),
            background: Some(background),
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        if let Some(background) = self.background.take() {
            background.stop().await;
        }
    }
}
