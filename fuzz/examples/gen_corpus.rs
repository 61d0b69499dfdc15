//! Writes the seed corpora `fuzz/corpus/<target>/seed-*`: a few valid (and a few nearly valid)
//! inputs per target, made with the same fixed keys and times the targets use, so every run
//! starts deep inside each format instead of at its first byte.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus            # (re)write seeds
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus -- --check # compare only
//! ```
//!
//! The output is deterministic; `--check` exits 1 when the checked-in seeds differ from what
//! this generator writes (after a wire format change, regenerate and commit them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use edgevote_fuzz::fixture::{NOW, OLD, Sample, ballot, checkpoint, fixture, signed_sample};
use edgevote_fuzz::jws_doc::canonical_header;
use edgevote_shared::bundle::BundleManifest;
use edgevote_shared::checkpoint::key_hash;
use edgevote_shared::envelope::QueueEnvelope;
use edgevote_shared::manifest::ElectionManifest;
use edgevote_shared::tally::PublishedTally;
use edgevote_shared::{Receipt, Role, VoteToken, b64, json, sign};

type Seeds = BTreeMap<String, Vec<u8>>;

fn prefixed(prefix: u8, body: impl AsRef<[u8]>) -> Vec<u8> {
    let mut out = vec![prefix];
    out.extend_from_slice(body.as_ref());
    out
}

/// Seeds of the generic JWS target (see `edgevote_fuzz::jws_doc` for the mode byte).
fn document_seeds<T: Sample>(other_type: &str) -> Seeds {
    let fx = fixture();
    let current = fx.current(T::SIGNER);
    let retired = fx.retired(T::SIGNER);
    let now = json::to_vec(&T::sample(NOW));
    let old = json::to_vec(&T::sample(OLD));
    let mut header_and_payload = canonical_header::<T>(current.kid());
    header_and_payload.push(0);
    header_and_payload.extend_from_slice(&now);
    Seeds::from([
        (
            "seed-0-compact".into(),
            prefixed(b'0', signed_sample::<T>()),
        ),
        (
            "seed-0-compact-retired-key".into(),
            prefixed(b'0', sign(retired, &T::sample(OLD)).expect("valid sample")),
        ),
        ("seed-0-other-type".into(), prefixed(b'0', other_type)),
        ("seed-1-payload".into(), prefixed(b'1', &now)),
        ("seed-2-payload-retired-key".into(), prefixed(b'2', &old)),
        (
            "seed-2-payload-after-retirement".into(),
            prefixed(b'2', &now),
        ),
        (
            "seed-3-header-payload".into(),
            prefixed(b'3', header_and_payload),
        ),
    ])
}

fn ballot_seeds() -> Seeds {
    let mut seeds = Seeds::new();
    for (name, n, choice, nonce) in [
        ("seed-yes", 1, "yes", 7),
        ("seed-revote-no", 1, "no", 8),
        ("seed-other-voter-blank", 2, "blank", 9),
        ("seed-unknown-choice", 3, "maybe", 10),
    ] {
        seeds.insert(name.into(), json::to_vec(&ballot(n, choice, nonce)));
    }
    seeds
}

fn checkpoint_seeds() -> Seeds {
    let fx = fixture();
    let current = fx.current(Role::Log);
    let retired = fx.retired(Role::Log);
    let checkpoint = checkpoint();
    let note = checkpoint.sign(current).expect("valid checkpoint");
    let old_note = checkpoint.sign(retired).expect("valid checkpoint");
    // The same body with both signatures, the retired key's first.
    let (_, old_signature) = old_note.split_once("\n\n").expect("signed note");
    let both = note.replacen("\n\n", &format!("\n\n{old_signature}"), 1);
    let body = checkpoint.body();
    let mut signature = key_hash(&checkpoint.origin, &current.verifying_key()).to_vec();
    signature.extend_from_slice(&current.sign_message(body.as_bytes()));
    assert_eq!(
        note,
        format!(
            "{body}\n\u{2014} {} {}\n",
            checkpoint.origin,
            b64::encode_std(&signature)
        ),
        "the checkpoint target signs notes the way Checkpoint::sign does"
    );
    Seeds::from([
        ("seed-0-note".into(), prefixed(b'0', &note)),
        ("seed-0-note-retired-key".into(), prefixed(b'0', &old_note)),
        ("seed-0-note-two-signatures".into(), prefixed(b'0', &both)),
        ("seed-1-body".into(), prefixed(b'1', &body)),
        (
            "seed-1-body-extension".into(),
            prefixed(b'1', format!("{body}extension line\n")),
        ),
    ])
}

fn keyset_seeds() -> Seeds {
    let fx = fixture();
    let keys = &fx.keys;
    let mut seeds = Seeds::from([
        ("seed-set-pretty".into(), keys.to_json_pretty().into_bytes()),
        ("seed-set-compact".into(), json::to_vec(&keys.to_doc())),
    ]);
    for jwk in keys.iter().filter(|j| j.edgevote_role == Role::Authority) {
        let name = if jwk.valid_until.is_some() {
            "seed-jwk-retired"
        } else {
            "seed-jwk-current"
        };
        seeds.insert(name.into(), json::to_vec(jwk));
    }
    seeds
}

fn json_seeds() -> Seeds {
    let envelope = json::to_vec(&QueueEnvelope::sample(NOW));
    Seeds::from([
        ("seed-envelope".into(), prefixed(0xff, &envelope)),
        (
            "seed-depth-6".into(),
            prefixed(0xff, r#"{"a":[{"b":[{"c":[1,2.5,"x"]}]}]}"#),
        ),
        (
            "seed-depth-7".into(),
            prefixed(0xff, r#"[[[[[[[true]]]]]],{"k":null}]"#),
        ),
        (
            "seed-brackets-in-strings".into(),
            prefixed(0xff, r#"{"s":"[[[[{{{{\"]]]]","t":"\\","u":"\u005b"}"#),
        ),
        (
            "seed-small-limit".into(),
            prefixed(1, r#"{"just":"over sixteen bytes"}"#),
        ),
        (
            // A duplicate key whose first value nests deepest: the text nests 3 levels, the
            // parsed `Value` (last key wins) only 1.
            "seed-duplicate-key-deeper-first".into(),
            prefixed(0xff, r#"{"a":{"b":{"c":1}},"a":2}"#),
        ),
    ])
}

fn b64_seeds() -> Seeds {
    let fx = fixture();
    let signature = fx.current(Role::Edge).sign_message(b"edgevote");
    let digest = edgevote_shared::Digest32::of(b"edgevote");
    Seeds::from([
        ("seed-digest".into(), digest.to_b64().into_bytes()),
        ("seed-signature".into(), b64::encode(signature).into_bytes()),
        (
            "seed-std-root".into(),
            b64::encode_std(digest.0).into_bytes(),
        ),
        ("seed-short".into(), b"AQID".to_vec()),
    ])
}

fn merkle_seeds() -> Seeds {
    let bytes: Vec<u8> = (0u8..=255).collect();
    Seeds::from([
        ("seed-1-leaf".into(), prefixed(1, &bytes[..8])),
        ("seed-4-leaves".into(), prefixed(4, &bytes[..64])),
        ("seed-7-leaves".into(), prefixed(7, &bytes[..200])),
        ("seed-64-leaves".into(), prefixed(64, &bytes)),
    ])
}

fn all_seeds() -> BTreeMap<&'static str, Seeds> {
    let token = signed_sample::<VoteToken>();
    let receipt = signed_sample::<Receipt>();
    BTreeMap::from([
        ("token", document_seeds::<VoteToken>(&receipt)),
        ("receipt", document_seeds::<Receipt>(&token)),
        ("envelope", document_seeds::<QueueEnvelope>(&receipt)),
        ("manifest", document_seeds::<ElectionManifest>(&token)),
        ("bundle", document_seeds::<BundleManifest>(&token)),
        ("tally", document_seeds::<PublishedTally>(&receipt)),
        ("ballot", ballot_seeds()),
        ("checkpoint", checkpoint_seeds()),
        ("keyset", keyset_seeds()),
        ("json", json_seeds()),
        ("b64", b64_seeds()),
        ("merkle", merkle_seeds()),
    ])
}

fn seed_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .collect();
    files.sort();
    files
}

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut stale = 0;
    for (target, seeds) in all_seeds() {
        let dir = corpus.join(target);
        let mut expected: Vec<PathBuf> = seeds.keys().map(|name| dir.join(name)).collect();
        expected.sort();
        if check {
            for (name, bytes) in &seeds {
                let path = dir.join(name);
                if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
                    eprintln!("stale or missing: {}", path.display());
                    stale += 1;
                }
            }
            for extra in seed_files(&dir)
                .into_iter()
                .filter(|p| !expected.contains(p))
            {
                eprintln!("not generated: {}", extra.display());
                stale += 1;
            }
            continue;
        }
        std::fs::create_dir_all(&dir).expect("create corpus directory");
        for old in seed_files(&dir) {
            std::fs::remove_file(old).expect("remove old seed");
        }
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
        println!("{target:<11} {} seeds", seeds.len());
    }
    if stale > 0 {
        eprintln!("{stale} seed files differ; run the generator without --check and commit them");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
