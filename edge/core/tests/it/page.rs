//! The voter's page as the core serves it: every file with the page's security headers, pages
//! that reference only files the edge serves, no inline script or style (the CSP forbids them),
//! and scripts that look up only elements their page has.

use edgevote_edge_core::page::{self, ASSETS, CSP, VERIFIER_NOT_SERVED, VERIFIER_PATH};
use edgevote_edge_core::{Outcome, Request, Response};

fn get(path: &str) -> Response {
    let request = Request {
        method: "GET",
        path,
        content_type: None,
        body: b"",
    };
    match super::edge().handle(request, super::NOW_MS) {
        Outcome::Respond(r) => r,
        other => panic!("GET {path} enqueued: {other:?}"),
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn every_page_file_is_served_with_the_security_headers() {
    for asset in &ASSETS {
        let response = get(asset.path);
        assert_eq!(response.status, 200, "{}", asset.path);
        assert_eq!(response.content_type, asset.content_type);
        assert_eq!(response.body, asset.body.as_bytes());
        assert_eq!(header(&response, "content-security-policy"), Some(CSP));
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
    }
    assert!(CSP.contains("default-src 'none'") && CSP.contains("script-src 'self'"));
    assert!(!CSP.contains("unsafe-inline"), "no inline script or style");
}

#[test]
fn the_core_serves_no_verifier_and_says_so() {
    let response = get(VERIFIER_PATH);
    assert_eq!(response.status, 404);
    assert_eq!(response.error_code().as_deref(), Some(VERIFIER_NOT_SERVED));
    let served = page::verifier_response(b"\0asm");
    assert_eq!(served.content_type, "application/wasm");
    assert_eq!(header(&served, "content-security-policy"), Some(CSP));
}

#[test]
fn a_page_takes_no_other_method() {
    let request = Request {
        method: "POST",
        path: "/",
        content_type: Some("application/json"),
        body: b"{}",
    };
    match super::edge().handle(request, super::NOW_MS) {
        Outcome::Respond(r) => assert_eq!(r.status, 405),
        other => panic!("POST / was taken: {other:?}"),
    }
}

/// The values of `attribute="..."` in `html`.
fn attributes<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let marker = format!(" {attribute}=\"");
    html.split(marker.as_str())
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

#[test]
fn pages_reference_only_files_the_edge_serves_and_nothing_inline() {
    for html in ASSETS
        .iter()
        .filter(|a| a.content_type.starts_with("text/html"))
    {
        let body = html.body;
        for reference in attributes(body, "src")
            .into_iter()
            .chain(attributes(body, "href"))
        {
            assert!(
                reference.starts_with('/'),
                "{}: {reference} is not on the edge",
                html.path
            );
            let path = reference.split(['#', '?']).next().unwrap_or_default();
            assert!(
                page::asset(path).is_some(),
                "{}: {reference} is not served",
                html.path
            );
        }
        assert_eq!(
            body.matches("<script").count(),
            body.matches("<script src=").count(),
            "{}: inline script",
            html.path
        );
        assert!(!body.contains(" style="), "{}: inline style", html.path);
        assert!(!body.contains("<style"), "{}: inline style", html.path);
        let handler = body.split(" on").skip(1).any(|rest| {
            let name = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
            name.len() < rest.len() && name.starts_with('=')
        });
        assert!(!handler, "{}: inline event handler", html.path);
    }
}

#[test]
fn scripts_look_up_only_elements_of_their_page() {
    for (script, html) in [("/page/vote.js", "/"), ("/page/receipt.js", "/receipt")] {
        let script = page::asset(script).unwrap().body;
        let ids = attributes(page::asset(html).unwrap().body, "id");
        let wanted: Vec<&str> = script
            .split("$(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert!(!wanted.is_empty());
        for id in wanted {
            assert!(ids.contains(&id), "{html} has no #{id}");
        }
    }
}
