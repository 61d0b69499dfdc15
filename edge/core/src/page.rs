//! The voter's page: a ballot page (`/`) and a receipt page (`/receipt`), plain HTML, CSS and
//! script embedded in the edge, so every platform that runs the core (the Spin component, the
//! Worker, the edge host's component) serves the same files, pinned by the signed bundle.
//!
//! Every page response carries a strict Content-Security-Policy: scripts, styles and the
//! verifier module only from the edge itself (no inline script or style, no external
//! resource), `wasm-unsafe-eval` for the verifier alone, reads (`connect-src`) from any
//! HTTP(S) origin so the receipt page can fetch a key set and a log the voter names, no forms
//! posting elsewhere, no framing.
//!
//! The receipt page's verifier (`/verifier.wasm`, crate `edgevote-page-verifier`) is served by
//! the edge host natively; an edge without one (Spin, Workers) answers
//! [`VERIFIER_NOT_SERVED`], and the page says so.

use crate::Response;

/// The page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' blob:; connect-src 'self' http: https:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// The path the page loads the verifier module from.
pub const VERIFIER_PATH: &str = "/verifier.wasm";

/// The refusal code of an edge that serves no verifier module.
pub const VERIFIER_NOT_SERVED: &str = "verifier_not_served";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its path.
    pub path: &'static str,
    /// Its content type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

/// The page's files.
pub const ASSETS: [Asset; 6] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../page/index.html"),
    },
    Asset {
        path: "/receipt",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../page/receipt.html"),
    },
    Asset {
        path: "/page/page.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../page/page.css"),
    },
    Asset {
        path: "/page/common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../page/common.js"),
    },
    Asset {
        path: "/page/vote.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../page/vote.js"),
    },
    Asset {
        path: "/page/receipt.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../page/receipt.js"),
    },
];

/// The asset at `path`, if there is one.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The headers every page response carries.
pub fn security_headers() -> Vec<(&'static str, String)> {
    vec![
        ("content-security-policy", CSP.to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
        ("cache-control", "no-cache".to_owned()),
    ]
}

/// The response serving `asset`.
pub fn response(asset: &Asset) -> Response {
    Response {
        status: 200,
        content_type: asset.content_type,
        headers: security_headers(),
        body: asset.body.as_bytes().to_vec(),
    }
}

/// The verifier module's response, served by an edge that has one (the edge host).
pub fn verifier_response(module: &[u8]) -> Response {
    Response {
        status: 200,
        content_type: "application/wasm",
        headers: security_headers(),
        body: module.to_vec(),
    }
}

/// What an edge without a verifier module answers at [`VERIFIER_PATH`].
pub fn no_verifier() -> Response {
    Response::error(
        404,
        VERIFIER_NOT_SERVED,
        "this edge serves no receipt verifier: open the receipt page of an edgevote edge host, \
         or verify with `edgevote verify receipt`",
    )
}
