//! `edgevote bundle build | sign | deploy | status | rollback` against a running local stack,
//! as an operator would run them.

use crate::up::{start_up, stop_up};
use crate::{edgevote, ok};

/// The built component with a custom section appended: valid, with another digest.
fn variant(wasm: &[u8]) -> Vec<u8> {
    let mut out = wasm.to_vec();
    out.extend_from_slice(&[0, 6, 5, b'v', b'-', b't', b'w', b'o']);
    out
}

#[test]
fn operator_deploys_then_rolls_back_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stack");
    let up = start_up(dir.path(), &data, &[]);
    let stack: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("stack.json")).unwrap()).unwrap();
    let edge = stack["regions"][0]["edge_url"].as_str().unwrap().to_owned();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (keys, token) = (path(&data.join("keys")), path(&data.join("admin.token")));
    let component = dir.path().join("component.wasm");
    std::fs::write(
        &component,
        variant(&std::fs::read(crate::edge::component_path()).unwrap()),
    )
    .unwrap();
    let bundle = dir.path().join("bundle-2");

    let built = ok(
        dir.path(),
        &[
            "bundle",
            "build",
            "--component",
            &path(&component),
            "--out",
            &path(&bundle),
        ],
    );
    assert!(built.contains("next: edgevote bundle sign"), "{built}");
    let wasm = path(&bundle.join("edge.wasm"));
    let manifest = path(&bundle.join("bundle.jws"));
    ok(
        dir.path(),
        &[
            "bundle",
            "sign",
            "--keys",
            &keys,
            "--wasm",
            &wasm,
            "--bundle-version",
            "2",
            "--out",
            &manifest,
        ],
    );
    let target = ["--host", &edge, "--admin-token-file", &token];

    let before = ok(dir.path(), &[&["bundle", "status"][..], &target].concat());
    assert!(before.contains("previous: none"), "{before}");

    // A component that does not match its manifest is refused and changes nothing.
    let tampered = dir.path().join("tampered.wasm");
    std::fs::write(&tampered, variant(&std::fs::read(&wasm).unwrap())).unwrap();
    let refused = edgevote(
        dir.path(),
        &[
            &["bundle", "deploy"][..],
            &target,
            &["--wasm", &path(&tampered), "--manifest", &manifest],
        ]
        .concat(),
    );
    let refused_text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && refused_text.contains("bundle_refused"),
        "{refused_text}"
    );

    let deployed = ok(
        dir.path(),
        &[
            &["bundle", "deploy"][..],
            &target,
            &["--wasm", &wasm, "--manifest", &manifest],
        ]
        .concat(),
    );
    assert!(
        deployed.contains("edgevote-edge 2 sha256=") && deployed.contains("(rollback target)"),
        "{deployed}"
    );
    let voted = ok(
        dir.path(),
        &[
            "vote",
            "--up",
            &path(&data),
            "--region",
            "us-east-1",
            "--choice",
            "yes",
        ],
    );
    assert!(voted.to_lowercase().contains("receipt"), "{voted}");

    let rolled = ok(dir.path(), &[&["bundle", "rollback"][..], &target].concat());
    assert!(rolled.contains("previous: edgevote-edge 2"), "{rolled}");

    // A second rollback re-applies bundle 2 (signed now: its serial is the signing time).
    let again = ok(dir.path(), &[&["bundle", "rollback"][..], &target].concat());
    assert!(
        again.contains("active:   edgevote-edge 2 sha256="),
        "{again}"
    );
    // An old signed bundle (serial 1, below the running one's) is a downgrade: refused, and
    // nothing changes, unless the operator says so explicitly.
    let old = path(&bundle.join("old.jws"));
    let old_sign = [
        "bundle",
        "sign",
        "--keys",
        &keys,
        "--wasm",
        &wasm,
        "--bundle-version",
        "0.9",
        "--serial",
        "1",
        "--out",
        &old,
    ];
    ok(dir.path(), &old_sign);
    let deploy_old = [
        &["bundle", "deploy"][..],
        &target,
        &["--wasm", &wasm, "--manifest", &old],
    ]
    .concat();
    let downgrade = edgevote(dir.path(), &deploy_old);
    let downgrade_text = String::from_utf8_lossy(&downgrade.stdout);
    assert!(
        !downgrade.status.success() && downgrade_text.contains("bundle_downgrade"),
        "{downgrade_text}"
    );
    let unchanged = ok(dir.path(), &[&["bundle", "status"][..], &target].concat());
    assert!(
        unchanged.contains("active:   edgevote-edge 2 sha256="),
        "{unchanged}"
    );
    let allowed = ok(
        dir.path(),
        &[&deploy_old[..], &["--allow-downgrade"]].concat(),
    );
    assert!(
        allowed.contains("active:   edgevote-edge 0.9 sha256=") && allowed.contains("serial 1"),
        "{allowed}"
    );
    let wrong = std::fs::write(dir.path().join("wrong.token"), "x".repeat(40));
    wrong.unwrap();
    let unauthorized = edgevote(
        dir.path(),
        &[
            "bundle",
            "status",
            "--host",
            &edge,
            "--admin-token-file",
            &path(&dir.path().join("wrong.token")),
        ],
    );
    assert!(String::from_utf8_lossy(&unauthorized.stdout).contains("unauthorized"));
    stop_up(dir.path(), up);
}

#[test]
fn bundle_build_takes_the_wide_arithmetic_variant_and_refuses_it_with_a_component() {
    let wide = crate::edge::wide_component();
    let root = wide.ancestors().nth(4).unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle-wide");
    let built = ok(
        &root,
        &[
            "bundle",
            "build",
            "--variant",
            "wide",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(built.contains("edgevote host only"), "{built}");
    assert_eq!(
        std::fs::read(out.join("edge.wasm")).unwrap(),
        std::fs::read(&wide).unwrap()
    );
    // A variant and a ready component at once: which one was meant? Refused, nothing written.
    let other = dir.path().join("other");
    let refused = edgevote(
        &root,
        &[
            "bundle",
            "build",
            "--variant",
            "wide",
            "--component",
            wide.to_str().unwrap(),
            "--out",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(!other.exists());
}
