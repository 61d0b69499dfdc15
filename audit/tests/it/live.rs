//! The monitor of a live log: it follows a growing log, and alarms on a log that shrinks, forks
//! (a split view), rewrites its history, or signs a root its tiles do not hash to.

use edgevote_audit::live::{LiveError, Monitor, Observation};
use edgevote_audit::tiles::{FolderSource, TileLog, write_file};
use edgevote_shared::checkpoint::Checkpoint;
use edgevote_shared::{Role, SigningIdentity};

use crate::fixture;

const ORIGIN: &str = "edgevote/ref-1/live/r1";

/// A log of `entries` in a fresh folder, with a checkpoint signed by `key` (of `root`, or the
/// tiles' own root).
fn log(entries: &[String], key: &SigningIdentity, root: Option<[u8; 32]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let refs: Vec<&[u8]> = entries.iter().map(String::as_bytes).collect();
    log.append(&refs).unwrap();
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: log.size(),
        root: root.unwrap_or_else(|| log.root().unwrap()),
    };
    write_file(
        dir.path(),
        "checkpoint",
        checkpoint.sign(key).unwrap().as_bytes(),
    )
    .unwrap();
    dir
}

fn entries(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("vote-{i:04}")).collect()
}

fn observe(monitor: &mut Monitor, dir: &tempfile::TempDir) -> Result<Observation, LiveError> {
    monitor.observe(&FolderSource(dir.path().to_owned()))
}

fn monitor() -> Monitor {
    Monitor::new(fixture::keyset(), fixture::ELECTION, None)
}

#[test]
fn a_growing_log_is_followed() {
    let key = fixture::key(Role::Log);
    let mut m = monitor();
    assert_eq!(
        observe(&mut m, &log(&entries(10), &key, None)).unwrap(),
        Observation::First { size: 10 }
    );
    let grown = log(&entries(300), &key, None);
    assert_eq!(
        observe(&mut m, &grown).unwrap(),
        Observation::Grew { from: 10, to: 300 }
    );
    assert_eq!(
        observe(&mut m, &grown).unwrap(),
        Observation::Unchanged { size: 300 }
    );
}

#[test]
fn a_fork_a_rewrite_or_a_shrink_raises_the_alarm() {
    let key = fixture::key(Role::Log);
    let mut forked = entries(300);
    forked[299] = "another vote".into();
    let mut rewritten = entries(400);
    rewritten[3] = "a rewritten vote".into();
    for (name, other) in [
        ("split view", log(&forked, &key, None)),
        ("rewritten history", log(&rewritten, &key, None)),
        ("shrunk", log(&entries(200), &key, None)),
    ] {
        let mut m = monitor();
        observe(&mut m, &log(&entries(300), &key, None)).unwrap();
        let alarm = observe(&mut m, &other).unwrap_err();
        assert_eq!(alarm.code(), "inconsistent", "{name}: {alarm}");
        assert_eq!(
            m.last().unwrap().size,
            300,
            "{name}: the alarm keeps the last good head"
        );
    }
}

#[test]
fn a_checkpoint_the_tiles_do_not_match_or_a_key_not_pinned_is_refused() {
    let key = fixture::key(Role::Log);
    let mut m = monitor();
    let lying = log(&entries(10), &key, Some([7; 32]));
    assert_eq!(observe(&mut m, &lying).unwrap_err().code(), "bad_proof");
    let rogue = log(&entries(10), &fixture::rogue(Role::Log), None);
    assert_eq!(
        observe(&mut m, &rogue).unwrap_err().code(),
        "bad_checkpoint"
    );
    assert!(m.last().is_none());
}
