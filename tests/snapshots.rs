//! The four outputs of one fixed run, snapshotted (insta), so a change to what users read is
//! made on purpose: the console, junit.xml, report.md and report.json. Times, durations,
//! temporary paths and the host name are replaced by placeholders.

mod common;

use common::Attest;

const SUITE: &str = r#"id: story-10.2
title: Configure PostgreSQL Backend
story: "10.2"
requirements:
  FR66: PostgreSQL backend for metadata
  NFR29: Scales to 5,000+ documents
checks:
  - id: values-file
    title: Helm values name the PostgreSQL engine
    covers: [FR66, AC1]
    file:
      path: values.yaml
      contains: ["PAPERLESS_DBENGINE: postgresql"]
  - id: engine-is-sqlite
    title: The engine is not SQLite
    covers: [FR66, AC1]
    command:
      run: "echo 'engine: sqlite3'; exit 3"
      stdout_excludes: [sqlite]
  - id: after-engine
    title: Runs only when the engine check passed
    covers: [NFR29, AC3]
    needs: [engine-is-sqlite]
    command: { run: "true" }
  - id: later
    title: Documented, not run yet
    covers: [NFR29]
    ignore: waiting for the 5,000-document import
    command: { run: "true" }
"#;

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    // Filters apply in order: the run id first, since its random suffix may end like a
    // duration (`…-mv4z1s`).
    for (pattern, replacement) in [
        (r"\d{8}T\d{6}-[a-z0-9]{6}", "[RUN-ID]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]"),
        (r"\d+(\.\d+)?( ?(ms|s))\b", "[DURATION]"),
        (r#"time="[0-9.]+""#, r#"time="[T]""#),
        (
            r#""(exit_code|duration_ms)": -?\d+(\.\d+)?"#,
            r#""$1": [N]"#,
        ),
        (r"duration_ms=[0-9.]+", "duration_ms=[N]"),
        (r"/tmp/[^\s`|<\x22]+", "[TMP]"),
        (r#"timestamp="[^"]+""#, r#"timestamp="[TIME]""#),
        (r#"hostname="[^"]+""#, r#"hostname="[HOST]""#),
        (r"(?m)^\| host \| .* \|$", "| host | [HOST] |"),
        (r#""host": "[^"]*""#, r#""host": "[HOST]""#),
        (r"finished in [0-9.]+s", "finished in [T]"),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings
}

#[test]
fn every_output_of_a_fixed_run() {
    let out = Attest::new()
        .suite("story", SUITE)
        .file("values.yaml", "env:\n  PAPERLESS_DBENGINE: postgresql\n")
        .args(&["run", "--color", "never"])
        .run();
    out.assert_code(1);
    settings().bind(|| {
        insta::assert_snapshot!("console_stdout", out.stdout);
        insta::assert_snapshot!("junit_xml", out.report("junit.xml"));
        insta::assert_snapshot!("report_md", out.report("report.md"));
        insta::assert_snapshot!("report_json", out.report("report.json"));
    });
}
