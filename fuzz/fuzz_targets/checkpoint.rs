//! Fuzzes the C2SP signed-note checkpoint parser and verifier.
//!
//! The first byte picks the mode: `'0'` (even): the rest is a signed note as it is; `'1'` (odd):
//! the rest is the note text (the checkpoint body), which the target signs with the current log
//! key under the name on its first line, so the body rules behind the signature get fuzzed too.
//!
//! Properties:
//! - a note whose only signature the target made verifies only under that key, never under the
//!   other log key;
//! - the body of a verified note is the canonical C2SP form of the checkpoint it yields: origin,
//!   tree size in decimal without sign or leading zeros, standard base64 of the root, each line
//!   ended by a single `\n` (extension lines may follow);
//! - a verified checkpoint re-signs, and the new note verifies to the same checkpoint;
//! - every refusal carries a stable code.
#![no_main]

use edgevote_fuzz::assert_stable_code;
use edgevote_fuzz::fixture::fixture;
use edgevote_shared::Role;
use edgevote_shared::b64;
use edgevote_shared::checkpoint::{Checkpoint, key_hash, verifier_key};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(text) = edgevote_fuzz::text(rest) else {
        return;
    };
    let fx = fixture();
    let current = fx.current(Role::Log);
    let retired = fx.retired(Role::Log);
    let note = if mode % 2 == 0 {
        text.to_owned()
    } else {
        let name = text.split('\n').next().unwrap_or_default();
        let mut signature = key_hash(name, &current.verifying_key()).to_vec();
        signature.extend_from_slice(&fx.sign_fast(current, text.as_bytes()));
        format!("{text}\n\u{2014} {name} {}\n", b64::encode_std(signature))
    };

    let under_current = Checkpoint::verify(&note, &current.verifying_key());
    let under_retired = Checkpoint::verify(&note, &retired.verifying_key());
    for error in [under_current.as_ref().err(), under_retired.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert_stable_code(error.code());
    }
    if mode % 2 == 1 && !text.contains("\n\n") {
        // Our signature line is the only one (a "\n\n" in the text could start a block holding
        // a genuine signature of the other key, copied from a seed).
        assert!(
            under_retired.is_err(),
            "a note signed by one key verifies under another"
        );
    }

    for (checkpoint, identity) in [(under_current, current), (under_retired, retired)] {
        let Ok(checkpoint) = checkpoint else {
            continue;
        };
        let (body, _) = note
            .split_once("\n\n")
            .expect("a verified note has a signature block");
        let mut lines = body.split('\n');
        let canonical = [
            checkpoint.origin.clone(),
            checkpoint.size.to_string(),
            b64::encode_std(checkpoint.root),
        ];
        for want in &canonical {
            assert_eq!(
                lines.next(),
                Some(want.as_str()),
                "a verified checkpoint body is not in canonical form"
            );
        }
        assert!(checkpoint.body().len() <= body.len() + 1);

        let resigned = checkpoint
            .sign(identity)
            .expect("a verified checkpoint re-signs");
        assert_eq!(
            Checkpoint::verify(&resigned, &identity.verifying_key()).as_ref(),
            Ok(&checkpoint),
            "a re-signed checkpoint does not verify to itself"
        );
        let vkey = verifier_key(&checkpoint.origin, &identity.verifying_key());
        assert!(vkey.starts_with(&format!("{}+", checkpoint.origin)));
    }
});
