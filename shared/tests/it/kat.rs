//! Known-answer tests: RFC 8032 §7.1 (Ed25519) and RFC 8037 Appendix A (JWK thumbprint, JWS).

use edgevote_shared::keys::{thumbprint, verify_message};
use edgevote_shared::{Role, SigningIdentity, b64};

struct Vector {
    secret: &'static str,
    public: &'static str,
    message: &'static str,
    signature: &'static str,
}

const RFC8032: &[Vector] = &[
    Vector {
        secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message: "",
        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    },
    Vector {
        secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message: "72",
        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    },
    Vector {
        secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message: "af82",
        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    },
];

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text).unwrap().try_into().unwrap()
}

#[test]
fn rfc8032_ed25519_vectors() {
    for (i, v) in RFC8032.iter().enumerate() {
        let identity = SigningIdentity::from_seed(&unhex::<32>(v.secret), Role::Edge);
        assert_eq!(
            identity.verifying_key().to_bytes(),
            unhex::<32>(v.public),
            "vector {i} public"
        );
        let message = hex::decode(v.message).unwrap();
        let signature = identity.sign_message(&message);
        assert_eq!(signature, unhex::<64>(v.signature), "vector {i} signature");
        assert!(verify_message(
            &identity.verifying_key(),
            &message,
            &signature
        ));
        let mut wrong = message.clone();
        wrong.push(0);
        assert!(!verify_message(
            &identity.verifying_key(),
            &wrong,
            &signature
        ));
    }
}

#[test]
fn rfc8037_thumbprint_and_jws() {
    let seed = b64::decode_array::<32>("d", "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
    let identity = SigningIdentity::from_seed(&seed, Role::Edge);
    assert_eq!(
        b64::encode(identity.verifying_key().as_bytes()),
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    assert_eq!(
        thumbprint(&identity.verifying_key()),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    assert_eq!(
        identity.kid(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let expected =
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    assert_eq!(
        b64::encode(identity.sign_message(input.as_bytes())),
        expected
    );
}
