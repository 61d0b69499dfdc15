//! The tiled live log: its tree heads and proofs, read back from the tiles alone, equal the
//! RFC 6962 ones computed from every leaf; appends are deduplicated, durable, and survive a
//! crash between writing tiles and committing the size.

use edgevote_audit::tiles::{FolderSource, TileLog, TiledTree, bundle_entries, tile_path};
use edgevote_shared::merkle;

fn entry(i: u64) -> Vec<u8> {
    format!("vote-{i:08}").into_bytes()
}

fn leaves(n: u64) -> Vec<merkle::Hash> {
    (0..n).map(|i| merkle::leaf_hash(&entry(i))).collect()
}

#[test]
fn tile_paths_follow_the_c2sp_layout() {
    assert_eq!(tile_path(Some(0), 1_234_067, 256), "tile/0/x001/x234/067");
    assert_eq!(tile_path(Some(1), 0, 5), "tile/1/000.p/5");
    assert_eq!(tile_path(None, 12, 256), "tile/entries/012");
    assert_eq!(tile_path(None, 1000, 17), "tile/entries/x001/000.p/17");
}

#[test]
fn heads_and_proofs_from_tiles_equal_those_from_every_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let mut size = 0u64;
    // Uneven appends across tile and level boundaries (256 and 65,536 leaves).
    for chunk in [1u64, 2, 253, 1, 300, 511, 64_000, 600, 1_000] {
        let entries: Vec<Vec<u8>> = (size..size + chunk).map(entry).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        size = log.append(&refs).unwrap();
        let all = leaves(size);
        assert_eq!(log.root().unwrap(), merkle::root(&all), "size {size}");
        let source = FolderSource(dir.path().to_owned());
        let tree = TiledTree::new(&source, size);
        for index in [0, size / 3, size / 2, size - 1] {
            let proof = tree.inclusion_proof(index).unwrap();
            let expected = merkle::inclusion_proof(index as usize, &all).unwrap();
            assert_eq!(proof, expected, "leaf {index} of {size}");
            assert!(merkle::verify_inclusion(
                index,
                size,
                &all[index as usize],
                &proof,
                &merkle::root(&all)
            ));
        }
    }
    assert_eq!(size, 66_668);
    // Every older tree head can be read from the same tiles.
    let source = FolderSource(dir.path().to_owned());
    for old in [1u64, 255, 256, 257, 65_536, 65_537] {
        let tree = TiledTree::new(&source, old);
        assert_eq!(
            tree.root().unwrap(),
            merkle::root(&leaves(old)),
            "size {old}"
        );
    }
    // Consistency proofs between any two sizes, from the tiles, equal those from every leaf.
    let all = leaves(size);
    let tree = TiledTree::new(&source, size);
    for old in [1u64, 3, 256, 257, 65_535, 65_536, 66_000, size] {
        let proof = tree.consistency_proof(old).unwrap();
        let expected = merkle::consistency_proof(old as usize, &all).unwrap();
        assert_eq!(proof, expected, "{old} -> {size}");
        let old_root = merkle::root(&all[..old as usize]);
        assert!(merkle::verify_consistency(
            old,
            size,
            &old_root,
            &merkle::root(&all),
            &proof
        ));
    }
    assert!(tree.consistency_proof(size + 1).is_err());
    // The entry bundles hold the entries.
    let bundle =
        bundle_entries(&std::fs::read(dir.path().join("tile/entries/001")).unwrap()).unwrap();
    assert_eq!(bundle[0], entry(256));
}

#[test]
fn an_entry_is_appended_once_and_the_log_reopens_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let (a, b) = (entry(1), entry(2));
    assert_eq!(log.append(&[&a, &b, &a]).unwrap(), 2);
    assert_eq!(
        log.append(&[&b]).unwrap(),
        2,
        "a redelivered entry is not appended again"
    );
    assert_eq!(log.index_of(&b).unwrap(), Some(1));
    let root = log.root().unwrap();
    drop(log);
    let mut log = TileLog::open(dir.path()).unwrap();
    assert_eq!((log.size(), log.root().unwrap()), (2, root));
    assert_eq!(log.append(&[&entry(3)]).unwrap(), 3);
}

#[test]
fn a_crash_before_the_size_is_committed_loses_no_committed_entry_and_appends_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let first: Vec<Vec<u8>> = (0..300).map(entry).collect();
    let refs: Vec<&[u8]> = first.iter().map(Vec::as_slice).collect();
    log.append(&refs).unwrap();
    let committed = log.root().unwrap();
    let more: Vec<Vec<u8>> = (300..400).map(entry).collect();
    let refs: Vec<&[u8]> = more.iter().map(Vec::as_slice).collect();
    log.append(&refs).unwrap();
    drop(log);
    // The crash: tiles and index of the second append were written, its size was not.
    std::fs::write(dir.path().join("size"), "300").unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    assert_eq!((log.size(), log.root().unwrap()), (300, committed));
    assert_eq!(
        log.index_of(&entry(350)).unwrap(),
        None,
        "not committed: not in the log"
    );
    // The redelivered entries are appended again, at the same places.
    assert_eq!(log.append(&refs).unwrap(), 400);
    assert_eq!(log.root().unwrap(), merkle::root(&leaves(400)));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    log.append(&[&entry(0)]).unwrap();
    let huge = vec![b'x'; edgevote_audit::tiles::MAX_ENTRY_BYTES + 1];
    assert!(log.append(&[&entry(1), &huge]).is_err());
    assert_eq!(log.size(), 1);
    let source = FolderSource(dir.path().to_owned());
    assert!(TiledTree::new(&source, 1).inclusion_proof(1).is_err());
    // A tile cut short is refused, not read as hashes (root() writes the tiles of size 1).
    log.root().unwrap();
    std::fs::write(dir.path().join(tile_path(Some(0), 0, 1)), [0u8; 31]).unwrap();
    assert!(TiledTree::new(&source, 1).root().is_err());
}

#[test]
fn a_stale_or_lost_index_never_hides_or_invents_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let first: Vec<Vec<u8>> = (0..10).map(entry).collect();
    log.append(&first.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    let lost: Vec<Vec<u8>> = (10..20).map(entry).collect();
    log.append(&lost.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    drop(log);
    // A crash before the second append's size: its index entries point at leaves 10..20.
    std::fs::write(dir.path().join("size"), "10").unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    // Other entries fill those leaves; the stale index must not claim the lost ones are there.
    let other: Vec<Vec<u8>> = (100..110).map(entry).collect();
    log.append(&other.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(log.index_of(&entry(12)).unwrap(), None);
    assert_eq!(log.index_of(&entry(102)).unwrap(), Some(12));
    // Redelivered, the lost entries are appended after them.
    let size = log
        .append(&lost.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(size, 30);
    assert_eq!(log.index_of(&entry(12)).unwrap(), Some(22));
    drop(log);
    // An index lost altogether is rebuilt from the bundles when the log opens.
    std::fs::remove_file(dir.path().join("index.redb")).unwrap();
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!(log.index_of(&entry(102)).unwrap(), Some(12));
    assert_eq!(log.index_of(&entry(3)).unwrap(), Some(3));
}

/// A caller that calls an entry new although the log holds it (a store that reports a ballot
/// whose earlier copy replaced a later one as newly stored) cannot put it in the log twice.
#[test]
fn an_entry_called_new_that_the_log_holds_is_not_appended_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let (a, b, c) = (entry(1), entry(2), entry(3));
    assert_eq!(log.append(&[&a, &b]).unwrap(), 2);
    // b again, as a store that calls it newly stored hands it over, with c and known ones.
    assert_eq!(log.append(&[&b, &c, &a, &c]).unwrap(), 3);
    assert_eq!(log.index_of(&b).unwrap(), Some(1));
    assert_eq!(log.index_of(&c).unwrap(), Some(2));
    let root = log.root().unwrap();
    assert_eq!(
        root,
        merkle::root(&[a, b, c].map(|e| merkle::leaf_hash(&e)))
    );
}

#[test]
fn the_commit_point_is_overwritten_in_place_and_read_back_on_reopen() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let size_file = dir.path().join("size");
    let mut log = TileLog::open(dir.path()).unwrap();
    log.append(&[&entry(0)]).unwrap();
    let inode = std::fs::metadata(&size_file).unwrap().ino();
    for i in 1..50 {
        log.append(&[&entry(i)]).unwrap();
    }
    // No file replaced per append (each replacement deletes an inode, which ext4 pays for on
    // every later file creation).
    assert_eq!(std::fs::metadata(&size_file).unwrap().ino(), inode);
    let text = std::fs::read_to_string(&size_file).unwrap();
    assert_eq!((text.len(), text.trim()), (20, "50"));
    let root = log.root().unwrap();
    drop(log);
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!((log.size(), log.root().unwrap()), (50, root));
    // A size file in the short form (as older logs wrote it) is read, and replaced whole by the
    // next append.
    drop(log);
    std::fs::write(&size_file, "50").unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    assert_eq!(log.append(&[&entry(50)]).unwrap(), 51);
    let text = std::fs::read_to_string(&size_file).unwrap();
    assert_eq!((text.len(), text.trim()), (20, "51"));
    assert_eq!(log.root().unwrap(), merkle::root(&leaves(51)));
}

#[test]
fn a_log_reopened_before_any_tree_head_recomputes_its_hash_tiles_from_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    // Appends only, no root(): the hash tiles still filling were never written.
    let mut size = 0u64;
    for chunk in [1u64, 299, 5, 65_235] {
        let entries: Vec<Vec<u8>> = (size..size + chunk).map(entry).collect();
        size = log
            .append(&entries.iter().map(Vec::as_slice).collect::<Vec<_>>())
            .unwrap();
        if size == 305 {
            drop(log);
            log = TileLog::open(dir.path()).unwrap();
            assert_eq!(log.root().unwrap(), merkle::root(&leaves(305)));
        }
    }
    assert_eq!(size, 65_540, "past one full level-1 tile: three levels");
    drop(log);
    let log = TileLog::open(dir.path()).unwrap();
    let all = leaves(size);
    assert_eq!(log.root().unwrap(), merkle::root(&all));
    let source = FolderSource(dir.path().to_owned());
    let tree = TiledTree::new(&source, size);
    for index in [0, 300, 65_537] {
        let proof = tree.inclusion_proof(index).unwrap();
        assert_eq!(
            proof,
            merkle::inclusion_proof(index as usize, &all).unwrap()
        );
    }
}

#[test]
fn a_torn_write_past_the_committed_entries_of_the_filling_file_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let first: Vec<Vec<u8>> = (0..10).map(entry).collect();
    log.append(&first.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    drop(log);
    // The crash: the next append's entries reached the filling file half written, its size
    // never did.
    let mut filling = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("filling-0"))
        .unwrap();
    std::io::Write::write_all(&mut filling, &[0, 43, b'x', b'y']).unwrap();
    drop(filling);
    let mut log = TileLog::open(dir.path()).unwrap();
    assert_eq!(
        (log.size(), log.root().unwrap()),
        (10, merkle::root(&leaves(10)))
    );
    // Redelivered, the entries are appended over the torn bytes.
    let more: Vec<Vec<u8>> = (10..15).map(entry).collect();
    log.append(&more.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    drop(log);
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!(
        (log.size(), log.root().unwrap()),
        (15, merkle::root(&leaves(15)))
    );
}

#[test]
fn a_crash_after_a_bundle_filled_reads_the_committed_entries_from_their_own_filling_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let first: Vec<Vec<u8>> = (0..250).map(entry).collect();
    log.append(&first.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    // This append completes bundle 0 and starts bundle 1 in the other filling file.
    let more: Vec<Vec<u8>> = (250..260).map(entry).collect();
    log.append(&more.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    drop(log);
    // The crash: its size never reached the disk; bundle 0's filling file still holds the
    // committed entries 0..250.
    std::fs::write(dir.path().join("size"), "250").unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    assert_eq!(
        (log.size(), log.root().unwrap()),
        (250, merkle::root(&leaves(250)))
    );
    assert_eq!(log.index_of(&entry(249)).unwrap(), Some(249));
    assert_eq!(log.index_of(&entry(255)).unwrap(), None, "never committed");
    assert_eq!(
        log.append(&more.iter().map(Vec::as_slice).collect::<Vec<_>>())
            .unwrap(),
        260
    );
    assert_eq!(log.root().unwrap(), merkle::root(&leaves(260)));
}

#[test]
fn a_full_bundle_left_by_a_crashed_append_is_never_read_as_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let first: Vec<Vec<u8>> = (0..250).map(entry).collect();
    log.append(&first.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    drop(log);
    // An append of other entries completed bundle 0 on disk and crashed before its size.
    let mut stale = first.clone();
    stale.extend((1000..1006).map(entry));
    let mut bytes = Vec::new();
    for e in &stale {
        bytes.extend_from_slice(&(e.len() as u16).to_be_bytes());
        bytes.extend_from_slice(e);
    }
    edgevote_audit::tiles::write_file(dir.path(), &tile_path(None, 0, 256), &bytes).unwrap();
    // Reopened, the log takes three other entries, commits them, and crashes again.
    let mut log = TileLog::open(dir.path()).unwrap();
    let more: Vec<Vec<u8>> = (250..253).map(entry).collect();
    assert_eq!(
        log.append(&more.iter().map(Vec::as_slice).collect::<Vec<_>>())
            .unwrap(),
        253
    );
    drop(log);
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!(log.root().unwrap(), merkle::root(&leaves(253)));
    assert_eq!(log.index_of(&entry(251)).unwrap(), Some(251));
    assert_eq!(log.index_of(&entry(1001)).unwrap(), None);
}

#[test]
fn a_failed_append_changes_nothing_and_its_retry_appends_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TileLog::open(dir.path()).unwrap();
    let first: Vec<Vec<u8>> = (0..250).map(entry).collect();
    log.append(&first.iter().map(Vec::as_slice).collect::<Vec<_>>())
        .unwrap();
    let root = log.root().unwrap();
    // The full bundle 0 cannot be written (a folder stands where it goes): the append that
    // completes it fails half way.
    let blocker = dir.path().join(tile_path(None, 0, 256));
    std::fs::create_dir_all(&blocker).unwrap();
    let more: Vec<Vec<u8>> = (250..260).map(entry).collect();
    let refs: Vec<&[u8]> = more.iter().map(Vec::as_slice).collect();
    assert!(log.append(&refs).is_err());
    assert_eq!((log.size(), log.root().unwrap()), (250, root));
    assert_eq!(log.index_of(&entry(252)).unwrap(), None);
    // The retry (the collector's redelivery) appends every one of them, once.
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(log.append(&refs).unwrap(), 260);
    assert_eq!(log.root().unwrap(), merkle::root(&leaves(260)));
    drop(log);
    let log = TileLog::open(dir.path()).unwrap();
    assert_eq!(
        (log.size(), log.root().unwrap()),
        (260, merkle::root(&leaves(260)))
    );
}
