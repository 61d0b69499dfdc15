//! Fuzzes the base64 decoders behind every binary field (`b64`) and the wire digest
//! (`Digest32`).
//!
//! Properties:
//! - decoding is canonical: whatever `b64::decode` (base64url, unpadded) or `b64::decode_std`
//!   (standard, padded) accepts re-encodes to exactly the same text, so every value has one
//!   encoding (signatures and digests cannot be re-encoded into a second valid form);
//! - `decode_array::<N>` accepts exactly the texts that decode to `N` bytes;
//! - a `Digest32` reads from a JSON string exactly when the text is 32 bytes of canonical
//!   base64url, and prints back as the same text;
//! - any bytes encode and decode back to themselves.
#![no_main]

use edgevote_shared::{Digest32, b64};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let encoded = b64::encode(data);
    assert_eq!(b64::decode("fuzz", &encoded).as_deref(), Ok(data));
    let encoded_std = b64::encode_std(data);
    assert_eq!(b64::decode_std("fuzz", &encoded_std).as_deref(), Ok(data));

    let Some(text) = edgevote_fuzz::text(data) else {
        return;
    };
    let url = b64::decode("fuzz", text);
    if let Ok(bytes) = &url {
        assert_eq!(
            b64::encode(bytes),
            text,
            "base64url decoding is not canonical"
        );
    }
    if let Ok(bytes) = b64::decode_std("fuzz", text) {
        assert_eq!(
            b64::encode_std(&bytes),
            text,
            "base64 decoding is not canonical"
        );
    }

    let array = b64::decode_array::<32>("fuzz", text);
    assert_eq!(
        array.is_ok(),
        url.as_ref().is_ok_and(|b| b.len() == 32),
        "decode_array disagrees with decode"
    );
    let digest: Result<Digest32, _> =
        serde_json::from_value(serde_json::Value::String(text.to_owned()));
    match (&digest, &array) {
        (Ok(digest), Ok(bytes)) => {
            assert_eq!(&digest.0, bytes);
            assert_eq!(digest.to_b64(), text);
            assert_eq!(digest.to_string(), text);
            assert_eq!(digest.to_hex().len(), 64);
        }
        (Err(_), Err(_)) => {}
        _ => panic!("Digest32 deserialization disagrees with decode_array: {digest:?}"),
    }
});
