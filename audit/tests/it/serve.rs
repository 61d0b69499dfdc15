//! `serve`: the published files over HTTP, nothing else, until shutdown.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture;

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn serves_the_published_files_until_shutdown() {
    let published = fixture::published().await;
    let dir = tempfile::tempdir().unwrap();
    published.write_to(dir.path()).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not published").unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edgevote_audit::serve(
        listener,
        dir.path().to_owned(),
        async move {
            let _ = stopped.await;
        },
    ));

    let checkpoint = get(addr, "/audit/receipts.checkpoint").await;
    assert!(checkpoint.starts_with("HTTP/1.1 200"), "{checkpoint}");
    assert!(checkpoint.contains("content-type: text/plain; charset=utf-8"));
    assert!(checkpoint.ends_with(published.file("receipts.checkpoint").unwrap()));

    let tally = get(addr, "/audit/tally.jws").await;
    assert!(tally.contains("content-type: application/jose"), "{tally}");

    let index = get(addr, "/audit/index.txt").await;
    assert!(index.ends_with("log.vkey\nindex.txt\n"), "{index}");

    for path in ["/audit/secret.txt", "/audit/..%2Fsecret.txt", "/secret.txt"] {
        let refused = get(addr, path).await;
        assert!(refused.starts_with("HTTP/1.1 404"), "{path}: {refused}");
    }
    std::fs::remove_file(dir.path().join("choices.log")).unwrap();
    let missing = get(addr, "/audit/choices.log").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
