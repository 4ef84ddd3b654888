//! Acceptance criteria as data, their roll-up in every report, and `attest evidence`, run
//! through the real binary: every roll-up state, story documents with bad input, `--write`
//! into a copy of a user's story (idempotent, refusing damaged markers and documents without
//! a "Completion Notes List"), `--since` between two real runs, and snapshots of the notes for
//! a fixed sandbox run of stories 5.2, 5.5 and 10.2.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Attest, Output};
use serde_json::Value;

const STORY_5_2: &str =
    include_str!("data/stories/5-2-configure-nfs-persistence-for-postgresql.md");
const PAPERLESS_DOC: &str = include_str!("data/stories/paperless-ngx-document-management.md");

/// One criterion per roll-up state (AC6 is left out by `--skip other`).
const STATES: &str = r#"id: states
title: Roll-up states
story: {id: "7.1"}
criteria:
  AC1: "the values file names PostgreSQL, which validates FR1 (metadata in PostgreSQL)"
  AC2: the engine is not SQLite
  AC3: runs after the engine check
  AC4: {text: a person reads the runbook, manual: a reviewer's judgement}
  AC5: nobody checks this yet
  AC6: left out by the filter
requirements:
  NFR2: Fast enough
checks:
  - {id: values, title: values file, covers: [FR1, AC1], file: {path: values.yaml, contains: [postgresql]}}
  - {id: engine, title: engine, covers: [AC2], command: {run: "echo sqlite; exit 3"}}
  - {id: after, title: after the engine, covers: [AC3], needs: [engine], command: {run: "true"}}
  - {id: runbook, title: the runbook exists, covers: [AC4], file: {path: values.yaml}}
  - {id: other, title: filtered out, covers: [AC6, NFR2], command: {run: "true"}}
"#;

fn evidence(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_attest"))
        .arg("evidence")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Output::of(output, dir)
}

fn find<'a>(items: &'a Value, id: &str) -> &'a Value {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no `{id}` in {items:#}"))
}

#[test]
fn every_roll_up_state_in_every_report() {
    let out = Attest::new()
        .suite("states", STATES)
        .file("values.yaml", "engine: postgresql\n")
        .args(&["run", "--skip", "other"])
        .run();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("AC5 of story 7.1 (\"nobody checks this yet\") is covered by no check"),
        "{}",
        out.stderr
    );
    let json = out.json();
    let story = &json["stories"][0];
    assert_eq!(story["story"], "7.1");
    let criteria = &story["criteria"];
    let state = |id: &str| find(criteria, id)["state"].as_str().unwrap().to_owned();
    let why = |id: &str| find(criteria, id)["why"].as_str().unwrap_or("").to_owned();
    assert_eq!(state("AC1"), "verified");
    assert_eq!(state("AC2"), "failed");
    assert!(why("AC2").contains("`engine` failed"), "{}", why("AC2"));
    assert_eq!(state("AC3"), "not-verified");
    assert!(why("AC3").contains("needs `engine`"), "{}", why("AC3"));
    assert_eq!(
        find(criteria, "AC3")["checks"][0]["skip"],
        "prerequisite-not-passed"
    );
    assert_eq!(state("AC4"), "manual");
    assert_eq!(why("AC4"), "a reviewer's judgement");
    assert_eq!(find(criteria, "AC4")["checks"][0]["state"], "passed");
    assert_eq!(state("AC5"), "not-covered");
    assert_eq!(state("AC6"), "not-verified");
    assert_eq!(find(criteria, "AC6")["checks"][0]["state"], "not-selected");
    let requirements = &story["requirements"];
    // FR1 is named by AC1's text, so it counts as listed; described as the criterion says.
    assert_eq!(find(requirements, "FR1")["state"], "verified");
    assert_eq!(
        find(requirements, "FR1")["description"],
        "metadata in PostgreSQL"
    );
    assert_eq!(find(requirements, "FR1")["criteria"][0], "AC1");
    assert_eq!(find(requirements, "NFR2")["state"], "not-verified");

    let markdown = out.report("report.md");
    for row in [
        "| AC1 | the values file names PostgreSQL, which validates FR1 (metadata in PostgreSQL) | ✅ verified |",
        "| AC2 | the engine is not SQLite | ❌ failed |",
        "| AC4 | a person reads the runbook | ⚠ manual: a reviewer's judgement |",
        "| AC5 | nobody checks this yet | ⚠ not covered: no check covers it | none |",
        "| AC6 | left out by the filter | ⚠ not verified: `other` did not run: not selected by the name filter |",
    ] {
        assert!(markdown.contains(row), "{row}\n--- report.md\n{markdown}");
    }

    let junit = out.report("junit.xml");
    assert!(junit.contains(r#"<property name="criterion.AC5" value="not covered: nobody checks this yet (no check covers it)"/>"#), "{junit}");
    assert!(
        junit.contains(r#"<property name="requirement-state.FR1" value="verified"/>"#),
        "{junit}"
    );
    assert!(
        junit.contains("covers AC2: the engine is not SQLite"),
        "{junit}"
    );
    common::assert_valid_junit(&out.dir.join("reports/junit.xml"));

    let notes = evidence(&out.dir, &["reports/report.json", "--story", "7.1"]);
    notes.assert_code(0);
    for line in [
        "**Validated by attest",
        "1 of 6 criteria verified, 1 failed, 2 not verified, 1 manual, 1 not covered.",
        "1. ✅ **AC1 verified**",
        "2. ❌ **AC2 failed**: the engine is not SQLite\n   - ❌ `engine`: FAILED:",
        "3. ⚠ **AC3 not verified**: runs after the engine check\n   - ⏭ `after`: did not run, so this is not verified: needs `engine`",
        "4. ⚠ **AC4 manual**: a person reads the runbook — checked by hand: a reviewer's judgement (supporting evidence below)",
        "5. ⚠ **AC5 not covered**: nobody checks this yet — no check covers it",
        "✅ **FR1 validated by AC1**: metadata in PostgreSQL",
        "⚠ **NFR2 not verified**: Fast enough — `other` did not run: not selected by the name filter",
        "**Re-run**: `attest run suites/states.yaml --target live`",
    ] {
        assert!(notes.stdout.contains(line), "{line}\n--- notes\n{}", notes.stdout);
    }
    // The run's id (what `attest cleanup` finds its leftovers by) is in the environment note.
    let run_id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert!(!run_id.is_empty());
    assert!(
        notes.stdout.contains(&format!("run `{run_id}` ")),
        "{}",
        notes.stdout
    );
}

#[test]
fn strict_check_fails_on_a_criterion_no_check_covers() {
    let attest = || {
        Attest::new()
            .suite("states", STATES)
            .file("values.yaml", "engine: postgresql\n")
    };
    let out = attest().args(&["check"]).run();
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("warning: suites/states.yaml:3:8: AC5 of story 7.1"),
        "{}",
        out.stderr
    );
    let out = attest().args(&["check", "--strict"]).run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("error: suites/states.yaml:3:8: AC5 of story 7.1"),
        "{}",
        out.stderr
    );
}

#[test]
fn story_documents_give_criteria_and_bad_ones_are_errors_at_their_line() {
    let suite = |file: &str, covers: &str| {
        format!(
            "id: s\ntitle: t\nstory: {{id: \"5.2\", file: {file}}}\ncriteria:\n  AC4: {{manual: by hand}}\n  AC5: {{manual: by hand}}\nchecks:\n  - {{id: c, title: t, covers: [{covers}], command: {{run: \"true\"}}}}\n"
        )
    };
    // The user's story: five criteria, FR32 named by AC3.
    let out = Attest::new()
        .file("docs/5-2.md", STORY_5_2)
        .suite("s", &suite("../docs/5-2.md", "AC1, AC2, AC3, FR32"))
        .args(&["run"])
        .run();
    out.assert_code(0);
    let story = &out.json()["stories"][0];
    assert_eq!(story["file"], "../docs/5-2.md");
    assert_eq!(
        find(&story["criteria"], "AC2")["title"],
        "a PVC for PostgreSQL data exists and shows Bound status; the PVC uses the nfs-client StorageClass"
    );
    assert_eq!(find(&story["requirements"], "FR32")["state"], "verified");
    assert_eq!(
        find(&story["requirements"], "FR32")["description"],
        "PostgreSQL persists data to NFS"
    );

    let bad = STORY_5_2.replacen(
        "\n3. **Given** PVC is bound",
        "\n4. **Given** PVC is bound",
        1,
    );
    for (doc, covers, needle) in [
        (None, "AC1", "suites/s.yaml:3:26: `file`: cannot read the story document `suites/../docs/5-2.md`"),
        (Some(bad.as_str()), "AC1", "suites/../docs/5-2.md:22:1: acceptance criterion numbered 4 where 3 was expected"),
        (Some(STORY_5_2), "AC9", "suites/s.yaml:8:31: check `c` covers `AC9`, which is not one of the story's criteria (AC1, AC2, AC3, AC4, AC5)"),
        (Some(PAPERLESS_DOC), "AC1", "has no \"## Acceptance Criteria\" section"),
    ] {
        let mut attest = Attest::new().suite("s", &suite("../docs/5-2.md", covers));
        if let Some(doc) = doc {
            attest = attest.file("docs/5-2.md", doc);
        }
        let out = attest.args(&["check"]).run();
        out.assert_code(2);
        assert!(out.stderr.contains(needle), "{needle}\n--- stderr\n{}", out.stderr);
    }
}

/// A run of a story's suite, then `evidence --write` into a copy of the user's story 5.2.
fn story_run() -> Output {
    let suite = r#"id: story-5.2
title: Configure NFS Persistence for PostgreSQL
story: {id: "5.2", file: ../docs/5-2.md}
criteria:
  AC4: {manual: the pod delete is done by hand}
  AC5: {manual: the node drain is done by hand}
checks:
  - {id: chart, title: chart values, covers: [AC1, FR32], file: {path: values.yaml, contains: [nfs-client]}}
  - {id: pvc, title: claim bound, covers: [AC2, FR32], command: {run: "sleep ${delay}; echo Bound"}}
  - {id: files, title: data files, covers: [AC3, FR32], file: {path: values.yaml, contains: [pg_wal]}}
variables:
  delay: "0"
"#;
    Attest::new()
        .file("docs/5-2.md", STORY_5_2)
        .file(
            "values.yaml",
            "storageClass: nfs-client\ndirs: [pg_wal, base, global]\n",
        )
        .suite("story-5.2", suite)
        .args(&["run", "--target", "homelab-k3s"])
        .run()
}

#[test]
fn write_is_idempotent_and_never_touches_what_a_person_wrote() {
    let out = story_run();
    out.assert_code(0);
    let story = out.dir.join("docs/5-2.md");
    let first = evidence(
        &out.dir,
        &[
            "reports/report.json",
            "--story",
            "5.2",
            "--write",
            "docs/5-2.md",
        ],
    );
    first.assert_code(0);
    assert!(
        first
            .stderr
            .contains("added the notes at the end of its Completion Notes List"),
        "{}",
        first.stderr
    );
    let written = std::fs::read_to_string(&story).unwrap();
    // Everything the person wrote is still there, in place; the block sits after their notes.
    let block_start = written.find("<!-- attest:evidence begin").unwrap();
    let block_end = written.find("<!-- attest:evidence end -->").unwrap()
        + "<!-- attest:evidence end -->\n".len();
    let mut without = written.clone();
    without.replace_range(block_start..block_end, "");
    assert_eq!(
        without.replace("\n\n\n", "\n\n"),
        STORY_5_2.replace("\n\n\n", "\n\n")
    );
    assert!(written[..block_start].ends_with("10. **Data Durability Validated**: Data survives both pod restarts (AC4) and node failures (AC5)\n\n"));
    assert!(
        written[block_end..].starts_with("\n### File List"),
        "{}",
        &written[block_end..]
    );
    assert!(written
        .contains("1. ✅ **AC1 verified**: the chart requests storage from the NFS provisioner"));
    assert!(written.contains("✅ **FR32 validated by AC3**: PostgreSQL persists data to NFS"));
    // Again: the same file, byte for byte.
    let again = evidence(
        &out.dir,
        &[
            "reports/report.json",
            "--story",
            "5.2",
            "--write",
            "docs/5-2.md",
        ],
    );
    again.assert_code(0);
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&story).unwrap(), written);

    // Damaged markers: refused, the file untouched, the notes printed instead.
    for (label, damaged) in [
        (
            "no end",
            written.replace("<!-- attest:evidence end -->\n", ""),
        ),
        (
            "no begin",
            written.replacen("<!-- attest:evidence begin", "<!-- was begin", 1),
        ),
        (
            "two blocks",
            format!("{written}\n<!-- attest:evidence begin -->\n<!-- attest:evidence end -->\n"),
        ),
    ] {
        std::fs::write(&story, &damaged).unwrap();
        let out = evidence(
            &out.dir,
            &[
                "reports/report.json",
                "--story",
                "5.2",
                "--write",
                "docs/5-2.md",
            ],
        );
        out.assert_code(2);
        assert!(
            out.stderr.contains("nothing was written"),
            "{label}: {}",
            out.stderr
        );
        assert!(
            out.stdout.contains("1. ✅ **AC1 verified**"),
            "{label}: notes printed"
        );
        assert_eq!(std::fs::read_to_string(&story).unwrap(), damaged, "{label}");
    }

    // A document without a Completion Notes List (the Paperless document): refused, printed.
    std::fs::write(out.dir.join("docs/paperless.md"), PAPERLESS_DOC).unwrap();
    let refused = evidence(
        &out.dir,
        &[
            "reports/report.json",
            "--story",
            "5.2",
            "--write",
            "docs/paperless.md",
        ],
    );
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("has no \"Completion Notes List\" heading"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stdout.contains("**Validated by attest"),
        "{}",
        refused.stdout
    );
    assert_eq!(
        std::fs::read_to_string(out.dir.join("docs/paperless.md")).unwrap(),
        PAPERLESS_DOC
    );

    // Bad input: no such story, not a report.
    let unknown = evidence(&out.dir, &["reports/report.json", "--story", "9.9"]);
    unknown.assert_code(2);
    assert!(
        unknown
            .stderr
            .contains("story `9.9` is not in `reports/report.json`; it has stories `5.2`"),
        "{}",
        unknown.stderr
    );
    let not_json = evidence(&out.dir, &["values.yaml"]);
    not_json.assert_code(2);
    assert!(
        not_json
            .stderr
            .contains("values.yaml:1:1: expected a report.json"),
        "{}",
        not_json.stderr
    );
}

#[test]
fn since_names_regressions_recoveries_and_moved_measurements() {
    let out = story_run();
    out.assert_code(0);
    let dir = out.dir.clone();
    std::fs::rename(dir.join("reports/report.json"), dir.join("old.json")).unwrap();
    // Second real run: the data files are gone and the claim check is slower.
    std::fs::write(dir.join("values.yaml"), "storageClass: nfs-client\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_attest"))
            .args(args)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let second = run(&["run", "--target", "homelab-k3s", "--set", "delay=0.4"]);
    assert_eq!(second.status.code(), Some(1));
    let notes = evidence(
        &dir,
        &[
            "reports/report.json",
            "--story",
            "5.2",
            "--since",
            "old.json",
        ],
    );
    notes.assert_code(0);
    assert!(
        notes.stdout.contains("**Since the run of "),
        "{}",
        notes.stdout
    );
    assert!(notes.stdout.contains("(`old.json`):"), "{}", notes.stdout);
    assert!(
        notes
            .stdout
            .contains("   - ❌ AC3 regressed: verified → failed (`files` failed:"),
        "{}",
        notes.stdout
    );
    assert!(
        notes.stdout.contains("   - `files` was passed, now failed"),
        "{}",
        notes.stdout
    );
    assert!(
        notes.stdout.contains("   - `pvc` duration moved from "),
        "{}",
        notes.stdout
    );
    // And back: the earlier run, seen from the failing one, recovered.
    std::fs::rename(dir.join("reports/report.json"), dir.join("failing.json")).unwrap();
    let back = evidence(
        &dir,
        &["old.json", "--story", "5.2", "--since", "failing.json"],
    );
    back.assert_code(0);
    assert!(
        back.stdout
            .contains("   - ✅ AC3 recovered: failed → verified"),
        "{}",
        back.stdout
    );
}

/// The notes of the sandbox's run of stories 5.2, 5.5 and 10.2 (report.json of `attest
/// sandbox` with its Kubernetes testbed, kept in tests/data/evidence), snapshotted.
#[test]
fn notes_of_a_sandbox_run_snapshot() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/evidence");
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    for story in ["5.2", "5.5", "10.2"] {
        let out = evidence(&data, &["sandbox-report.json", "--story", story]);
        out.assert_code(0);
        assert!(
            out.stdout
                .starts_with("**⚠ Sandbox run, not the live environment**"),
            "{}",
            out.stdout
        );
        settings.bind(|| insta::assert_snapshot!(format!("evidence_{story}"), out.stdout));
    }
}
