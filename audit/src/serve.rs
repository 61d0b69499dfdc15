//! Serving a published log over HTTP, read-only: `GET /audit/<file>` for the published files
//! ([`PUBLISHED`]) and nothing else.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::INDEX_FILE;

/// The files of a published log, with their content types. `index.txt` is generated: it lists
/// them.
pub const PUBLISHED: [(&str, &str); 8] = [
    ("receipts.log", "text/plain; charset=utf-8"),
    ("receipts.checkpoint", "text/plain; charset=utf-8"),
    ("choices.log", "text/plain; charset=utf-8"),
    ("choices.checkpoint", "text/plain; charset=utf-8"),
    ("tally.jws", "application/jose"),
    ("keyset.json", "application/jwk-set+json"),
    ("log.vkey", "text/plain; charset=utf-8"),
    (INDEX_FILE, "text/plain; charset=utf-8"),
];

/// The routes serving the published log in `folder`: `/audit/{file}`. A name that is not a
/// published file, or a file missing from the folder, gets 404.
pub fn router(folder: PathBuf) -> axum::Router {
    let root = Arc::new(folder);
    axum::Router::new()
        .route(
            "/audit/{file}",
            axum::routing::get(move |UrlPath(file): UrlPath<String>| {
                let root = Arc::clone(&root);
                async move { published_file(&root, &file) }
            }),
        )
        .layer(axum::middleware::map_response(allow_any_origin))
}

/// Marks a response of a public, read-only route readable by any page
/// (`Access-Control-Allow-Origin: *`): a voter's receipt page, served by an edge on another
/// origin, fetches the published log or a live log from here. Only simple GETs are served, so
/// no preflight is answered, and nothing a page reads here is private.
pub async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

/// Serves the published log in `folder` on `listener` until `shutdown` resolves (then it stops
/// accepting and finishes the requests in flight).
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    folder: PathBuf,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(folder))
        .with_graceful_shutdown(shutdown)
        .await
}

fn published_file(root: &std::path::Path, file: &str) -> Response {
    let Some((name, content_type)) = PUBLISHED.iter().find(|(n, _)| *n == file) else {
        return (StatusCode::NOT_FOUND, "not a published file\n").into_response();
    };
    let body = if *name == INDEX_FILE {
        PUBLISHED
            .iter()
            .map(|(n, _)| format!("{n}\n"))
            .collect::<String>()
    } else {
        match std::fs::read_to_string(root.join(name)) {
            Ok(text) => text,
            Err(_) => return (StatusCode::NOT_FOUND, "not published\n").into_response(),
        }
    };
    ([(header::CONTENT_TYPE, *content_type)], body).into_response()
}
