//! Ed25519 through the platform's WebCrypto (`crypto.subtle`, algorithm `Ed25519`), reached with
//! plain JS interop: the edge key is imported once per isolate as a non-extractable key, and
//! every signature and verification runs in the runtime's native code instead of the bundle's
//! Wasm arithmetic (several times less CPU per vote, measured by tests/worker/bench_worker.py).

use std::cell::RefCell;

use worker::js_sys::{self, Array, Function, Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use crate::config::PlatformEdgeKey;

/// Most authority keys whose imported form is kept (a key set holds a handful).
const MAX_VERIFY_KEYS: usize = 16;

/// The isolate's WebCrypto with the edge key imported.
pub struct WebCrypto {
    subtle: Object,
    /// `subtle.sign` and `subtle.verify`, looked up once (a lookup and an argument array per
    /// call were about 1% of workerd's CPU per vote).
    sign_fn: Function,
    verify_fn: Function,
    algorithm: Object,
    sign_key: JsValue,
    /// Authority public keys already imported, by their bytes.
    verify_keys: RefCell<Vec<([u8; 32], JsValue)>>,
}

/// A WebCrypto call that failed (the runtime's own error text).
#[derive(Debug, Clone)]
pub struct CryptoError(pub String);

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebCrypto: {}", self.0)
    }
}

fn js_error(stage: &str) -> impl Fn(JsValue) -> CryptoError + '_ {
    move |value| CryptoError(format!("{stage}: {}", crate::glue::js_text(value)))
}

fn set(object: &Object, key: &str, value: &JsValue) -> Result<(), CryptoError> {
    Reflect::set(object, &JsValue::from_str(key), value)
        .map(drop)
        .map_err(js_error("building an argument"))
}

/// `object[name]`, a function.
fn function_of(object: &Object, name: &str) -> Result<Function, CryptoError> {
    Reflect::get(object, &JsValue::from_str(name))
        .map_err(js_error(name))?
        .dyn_into()
        .map_err(js_error(name))
}

/// The value the promise a WebCrypto call returned settles to.
async fn settle(
    name: &str,
    returned: Result<JsValue, CryptoError>,
) -> Result<JsValue, CryptoError> {
    let promise: Promise = returned?.dyn_into().map_err(js_error(name))?;
    JsFuture::from(promise).await.map_err(js_error(name))
}

impl WebCrypto {
    /// Imports the edge key into the isolate's WebCrypto.
    pub async fn new(key: &PlatformEdgeKey) -> Result<WebCrypto, CryptoError> {
        let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
            .map_err(js_error("globalThis.crypto"))?;
        let subtle: Object = Reflect::get(&crypto, &JsValue::from_str("subtle"))
            .map_err(js_error("crypto.subtle"))?
            .dyn_into()
            .map_err(js_error("crypto.subtle"))?;
        let algorithm = Object::new();
        set(&algorithm, "name", &JsValue::from_str("Ed25519"))?;
        let jwk = Object::new();
        let x = key.x();
        for (name, value) in [
            ("kty", "OKP"),
            ("crv", "Ed25519"),
            ("d", key.d.as_str()),
            ("x", x.as_str()),
        ] {
            set(&jwk, name, &JsValue::from_str(value))?;
        }
        let mut this = WebCrypto {
            sign_fn: function_of(&subtle, "sign")?,
            verify_fn: function_of(&subtle, "verify")?,
            subtle,
            algorithm,
            sign_key: JsValue::UNDEFINED,
            verify_keys: RefCell::new(Vec::new()),
        };
        this.sign_key = this.import("jwk", &jwk, "sign").await?;
        Ok(this)
    }

    /// `crypto.subtle[method](...args)`, awaited.
    async fn call(&self, method: &str, args: &[&JsValue]) -> Result<JsValue, CryptoError> {
        let args: Array = args.iter().copied().collect();
        let promise = function_of(&self.subtle, method)?
            .apply(&self.subtle, &args)
            .map_err(js_error(method));
        settle(method, promise).await
    }

    async fn import(
        &self,
        format: &str,
        key: &JsValue,
        usage: &str,
    ) -> Result<JsValue, CryptoError> {
        let usages: Array = std::iter::once(JsValue::from_str(usage)).collect();
        self.call(
            "importKey",
            &[
                &JsValue::from_str(format),
                key,
                &self.algorithm,
                &JsValue::FALSE,
                &usages,
            ],
        )
        .await
    }

    /// The edge key's Ed25519 signature of `message`.
    pub async fn sign(&self, message: &[u8]) -> Result<[u8; 64], CryptoError> {
        let data: JsValue = Uint8Array::from(message).into();
        let promise = self
            .sign_fn
            .call3(&self.subtle, &self.algorithm, &self.sign_key, &data)
            .map_err(js_error("sign"));
        let signature = settle("sign", promise).await?;
        let bytes = Uint8Array::new(&signature).to_vec();
        bytes
            .try_into()
            .map_err(|b: Vec<u8>| CryptoError(format!("sign: {} bytes, not 64", b.len())))
    }

    /// Whether `signature` is `public_key`'s Ed25519 signature of `message` (RFC 8032).
    pub async fn verify(
        &self,
        public_key: &[u8; 32],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<bool, CryptoError> {
        let key = self.verify_key(public_key).await?;
        let signature: JsValue = Uint8Array::from(&signature[..]).into();
        let data: JsValue = Uint8Array::from(message).into();
        let promise = self
            .verify_fn
            .call4(&self.subtle, &self.algorithm, &key, &signature, &data)
            .map_err(js_error("verify"));
        let valid = settle("verify", promise).await?;
        valid
            .as_bool()
            .ok_or_else(|| CryptoError("verify: the answer is not a boolean".into()))
    }

    /// The imported form of `public_key`, imported on first use.
    async fn verify_key(&self, public_key: &[u8; 32]) -> Result<JsValue, CryptoError> {
        let known = self
            .verify_keys
            .borrow()
            .iter()
            .find(|(k, _)| k == public_key)
            .map(|(_, v)| v.clone());
        if let Some(key) = known {
            return Ok(key);
        }
        let raw: JsValue = Uint8Array::from(&public_key[..]).into();
        let key = self.import("raw", &raw, "verify").await?;
        let mut keys = self.verify_keys.borrow_mut();
        if keys.len() >= MAX_VERIFY_KEYS {
            keys.remove(0);
        }
        keys.push((*public_key, key.clone()));
        Ok(key)
    }
}
