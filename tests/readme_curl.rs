//! The README's REST examples, run as written with the real `curl` against a real server.

mod common;

use common::TestServer;

/// The `curl` lines of the README's "REST API" section.
fn readme_curls() -> Vec<String> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## REST API")
        .nth(1)
        .expect("README has a REST API section");
    let block = section.split("```sh").nth(1).expect("a sh block");
    let block = block.split("```").next().unwrap();
    block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_curl_example_works_as_written() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is required for this test (apt-get install curl)");
    }
    let server = TestServer::start().await;
    let curls = readme_curls();
    assert!(curls.len() >= 10, "README lost its examples: {curls:?}");
    for line in curls {
        let command = line
            .replace("localhost:8080", &server.addr.to_string())
            // Show the status so a failing example is caught.
            .replacen("curl -s", "curl -sS -o /dev/stderr -w '%{http_code}'", 1);
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .output()
            .await
            .unwrap();
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        let body = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{line}: curl failed: {body}");
        let code: u16 = status.trim().parse().unwrap_or(0);
        assert!((200..300).contains(&code), "{line}: HTTP {code}: {body}");
        if !line.contains("/metrics") {
            serde_json::from_str::<serde_json::Value>(&body)
                .unwrap_or_else(|e| panic!("{line}: not JSON ({e}): {body}"));
        }
    }
}
