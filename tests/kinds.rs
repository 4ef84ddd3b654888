//! Each check kind against real components: passes when it should, fails for the right reason
//! with a clear message when it should not.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use attest_sandbox::{dns_server::DnsServer, listeners};
use common::{one_check, Attest};
use tokio::io::AsyncReadExt;

fn run_one(kind: &str, body: &str) -> Attest {
    Attest::new()
        .suite("t", &one_check(kind, body))
        .args(&["run"])
}

async fn dns() -> DnsServer {
    let records = [(
        "db.data.svc.cluster.local".to_string(),
        IpAddr::V4(Ipv4Addr::new(10, 43, 0, 7)),
    )];
    DnsServer::start(&records).await.expect("dns server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_resolves_a_service_name() {
    let server = dns().await;
    let ns = server.addr();
    let out = run_one(
        "dns",
        &format!("name: db.data.svc.cluster.local\nnameserver: {ns}\naddresses: [10.43.0.7]"),
    )
    .run_async()
    .await;
    out.assert_code(0);
    let result = out.expect("c", "passed", "resolved to 10.43.0.7");
    assert!(result["measurements"]["lookup_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_fails_on_nxdomain_with_a_hint() {
    let server = dns().await;
    let ns = server.addr();
    let out = run_one(
        "dns",
        &format!("name: postgresql.data.svc.cluster.local\nnameserver: {ns}"),
    )
    .run_async()
    .await;
    out.assert_code(1);
    out.expect_in("c", "failed", "found", "NXDOMAIN");
    out.expect_in(
        "c",
        "failed",
        "hint",
        "<service>.<namespace>.svc.cluster.local",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_expects_nxdomain_for_names_that_must_not_exist() {
    let server = dns().await;
    let ns = server.addr();
    let out = run_one(
        "dns",
        &format!("name: gone.data.svc.cluster.local\nnameserver: {ns}\nexpect: nxdomain"),
    )
    .run_async()
    .await;
    out.assert_code(0);
    out.expect("c", "passed", "does not exist");
    let out = run_one(
        "dns",
        &format!("name: db.data.svc.cluster.local\nnameserver: {ns}\nexpect: nxdomain"),
    )
    .run_async()
    .await;
    out.assert_code(1);
    out.expect("c", "failed", "exists but should not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_fails_when_the_answer_lacks_an_expected_address() {
    let server = dns().await;
    let ns = server.addr();
    let out = run_one(
        "dns",
        &format!("name: db.data.svc.cluster.local\nnameserver: {ns}\naddresses: [10.43.0.99]"),
    )
    .run_async()
    .await;
    out.assert_code(1);
    out.expect("c", "failed", "not to 10.43.0.99");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_against_a_dead_nameserver_fails_within_its_timeout() {
    let server = dns().await;
    let ns = server.addr();
    server.shutdown().await;
    let started = std::time::Instant::now();
    let out = run_one(
        "dns",
        &format!("name: db.data.svc.cluster.local\nnameserver: {ns}"),
    )
    .run_async()
    .await;
    out.assert_code(1);
    out.expect("c", "failed", "did not resolve");
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_measures_connect_latency_against_a_listener() {
    let listener = listeners::tcp_accepting().await.unwrap();
    let body = format!(
        "host: 127.0.0.1\nport: {}\ncount: 10\nlatency: [\"p95 < 100ms\"]",
        listener.addr.port()
    );
    let out = run_one("tcp", &body).run_async().await;
    out.assert_code(0);
    let result = out.expect("c", "passed", "10 connects");
    assert_eq!(result["measurements"]["connects"], 10.0);
    assert!(result["measurements"]["p95_ms"].as_f64().unwrap() < 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_fails_when_latency_breaks_a_threshold() {
    let listener = listeners::tcp_accepting().await.unwrap();
    let body = format!(
        "host: 127.0.0.1\nport: {}\ncount: 3\nlatency: [\"max < 1ns\"]",
        listener.addr.port()
    );
    let out = run_one("tcp", &body).run_async().await;
    out.assert_code(1);
    out.expect("c", "failed", "breaks `max < 0.00 ms`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_on_a_closed_port_fails_open_and_passes_refused() {
    let closed = listeners::closed_port().await.unwrap();
    let out = run_one("tcp", &format!("host: 127.0.0.1\nport: {}", closed.port()))
        .run_async()
        .await;
    out.assert_code(1);
    out.expect_in("c", "failed", "found", "Connection refused");
    let out = run_one(
        "tcp",
        &format!("host: 127.0.0.1\nport: {}\nexpect: refused", closed.port()),
    )
    .run_async()
    .await;
    out.assert_code(0);
    out.expect("c", "passed", "refused the connection, as expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_expecting_refusal_fails_when_the_port_is_open() {
    let listener = listeners::tcp_accepting().await.unwrap();
    let out = run_one(
        "tcp",
        &format!(
            "host: 127.0.0.1\nport: {}\nexpect: refused",
            listener.addr.port()
        ),
    )
    .run_async()
    .await;
    out.assert_code(1);
    out.expect_in("c", "failed", "hint", "the port is exposed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_a_redirect_without_following_it() {
    let web = listeners::http_paperless().await.unwrap();
    let body = format!(
        "url: http://{}/\nstatus: 302\nlocation: /\\/accounts\\/login\\//",
        web.addr
    );
    let out = run_one("http", &body).run_async().await;
    out.assert_code(0);
    out.expect("c", "passed", "answered 302");
    let body = format!(
        "url: http://{}/\nfollow_redirects: true\nbody_contains: [sign in]",
        web.addr
    );
    run_one("http", &body).run_async().await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fails_on_wrong_status_location_and_body() {
    let web = listeners::http_paperless().await.unwrap();
    let out = run_one("http", &format!("url: http://{}/\nstatus: 200", web.addr))
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("c", "failed", "status 302, expected 200");
    let body = format!(
        "url: http://{}/\nstatus: 302\nlocation: /dashboard",
        web.addr
    );
    let out = run_one("http", &body).run_async().await;
    out.expect("c", "failed", "does not match `/dashboard`");
    let body = format!("url: http://{}/accounts/login/\nbody_excludes: [\"/(?i)sqlite/\"]\nbody_contains: [Welcome back]", web.addr);
    let out = run_one("http", &body).run_async().await;
    out.expect("c", "failed", "`Welcome back` not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_a_slow_server_fails_at_the_check_timeout() {
    // Accepts and reads, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
            held.push(stream);
        }
    });
    let yaml = format!("id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    timeout: 500ms\n    http:\n      url: http://{addr}/\n");
    let out = Attest::new()
        .suite("t", &yaml)
        .args(&["run"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("c", "failed", "did not finish within its timeout of 500 ms");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_a_closed_port_fails_with_the_cause() {
    let closed = listeners::closed_port().await.unwrap();
    let out = run_one("http", &format!("url: http://{closed}/"))
        .run_async()
        .await;
    out.assert_code(1);
    out.expect_in("c", "failed", "found", "Connection refused");
}

const VALUES: &str = "env:\n  PAPERLESS_DBENGINE: postgresql\n  PAPERLESS_DBPORT: \"5432\"\npostgresql:\n  enabled: false\n";

#[test]
fn file_checks_content_and_yaml_values() {
    let body = "path: values.yaml\ncontains: [PAPERLESS_DBENGINE]\nexcludes: [sqlite]\nyaml:\n  env.PAPERLESS_DBENGINE: postgresql\n  env.PAPERLESS_DBPORT: \"5432\"\n  postgresql.enabled: \"false\"";
    let out = run_one("file", body).file("values.yaml", VALUES).run();
    out.assert_code(0);
    out.expect("c", "passed", "env.PAPERLESS_DBENGINE == postgresql");
}

#[test]
fn file_fails_on_wrong_yaml_value_missing_key_and_missing_file() {
    let body =
        "path: values.yaml\nsensitive: false\nyaml:\n  env.PAPERLESS_DBENGINE: sqlite\n  env.PAPERLESS_DBHOST: x";
    let out = run_one("file", body).file("values.yaml", VALUES).run();
    out.assert_code(1);
    out.expect(
        "c",
        "failed",
        "`env.PAPERLESS_DBENGINE` is `postgresql`, expected `sqlite`",
    );
    out.expect("c", "failed", "`env.PAPERLESS_DBHOST` is not set");
    let out = run_one("file", "path: nowhere.yaml").run();
    out.assert_code(1);
    out.expect("c", "failed", "does not exist");
}

#[test]
fn file_excludes_report_line_numbers_not_content() {
    let out = run_one("file", "path: s.yaml\nexcludes: [PASS]")
        .file("s.yaml", "a: 1\nPASS: hunter2-secret\n")
        .run();
    out.assert_code(1);
    out.expect("c", "failed", "found on line 2");
    assert!(!out.all_output().contains("hunter2"), "file content leaked");
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn file_git_ignored_passes_for_ignored_and_fails_for_tracked_secrets() {
    let attest = run_one("file", "path: secrets/app.yaml\ngit_ignored: true")
        .file(".gitignore", "secrets/\n")
        .file("secrets/app.yaml", "password: x\n");
    git(attest.path(), &["init", "-q"]);
    let out = attest.run();
    out.assert_code(0);
    out.expect("c", "passed", "ignored by git");

    let attest = run_one("file", "path: secrets/app.yaml\ngit_ignored: true")
        .file(".gitignore", "secrets/\n")
        .file("secrets/app.yaml", "password: x\n");
    git(attest.path(), &["init", "-q"]);
    git(attest.path(), &["add", "-f", "secrets/app.yaml"]);
    let out = attest.run();
    out.assert_code(1);
    out.expect("c", "failed", "tracked by git");

    let attest = run_one("file", "path: app.yaml\ngit_ignored: true").file("app.yaml", "x: 1\n");
    git(attest.path(), &["init", "-q"]);
    let out = attest.run();
    out.expect("c", "failed", "add it to .gitignore");
}

#[test]
fn command_judges_exit_code_and_streams() {
    let out = run_one("command", "run: \"echo migrated; echo warn >&2; exit 3\"\nexit_code: 3\nstdout_contains: [migrated]\nstderr_excludes: [error]").run();
    out.assert_code(0);
    let out = run_one(
        "command",
        "run: \"echo 'OperationalError: sqlite'\"\nstdout_excludes: [\"/(?i)sqlite/\"]",
    )
    .run();
    out.assert_code(1);
    out.expect("c", "failed", "OperationalError: sqlite");
    let out = run_one("command", "run: [definitely-not-a-program-xyz]").run();
    out.assert_code(1);
    out.expect("c", "error", "cannot start");
    // Numbers and booleans in an argument list, written or from a variable, are arguments.
    let out = Attest::new()
        .suite(
            "s",
            "id: s\ntitle: s\nvariables:\n  port: 5432\nchecks:\n  - id: c\n    title: c\n    command: {run: [echo, \"${port}\", 7, true, 0.5, 1.0], stdout_contains: [\"5432 7 true 0.5 1.0\"]}\n",
        )
        .args(&["run", "suites/"])
        .run();
    out.assert_code(0);
    out.expect("c", "passed", "`echo 5432 7 true 0.5 1.0` exited 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_search_domains_complete_short_names() {
    let server = dns().await;
    let ns = server.addr();
    let body = format!(
        "name: db\nnameserver: {ns}\nsearch: [data.svc.cluster.local]\naddresses: [10.43.0.7]"
    );
    let out = run_one("dns", &body).run_async().await;
    out.assert_code(0);
    let out = run_one("dns", &format!("name: db\nnameserver: {ns}"))
        .run_async()
        .await;
    out.assert_code(1);
}
