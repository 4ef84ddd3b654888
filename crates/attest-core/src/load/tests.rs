//! Variables read from Kubernetes Secrets, through a recording stand-in for the cluster (the
//! real reads are tested against the local control plane in `tests/kube_kinds.rs`), and
//! names given from outside that no suite uses.

use std::sync::Mutex;

use super::*;
use crate::k8s::secrets::SecretRef;

/// Answers from a fixed table and records every question.
#[derive(Default)]
struct Table {
    answers: Vec<(&'static str, Lookup)>,
    asked: Mutex<Vec<(Option<String>, SecretRef)>>,
}

impl ExternalValues for Table {
    fn kubernetes_secret(&self, context: Option<&str>, secret: &SecretRef) -> Lookup {
        self.asked
            .lock()
            .unwrap()
            .push((context.map(str::to_owned), secret.clone()));
        let key = format!("{}/{}/{}", secret.namespace, secret.name, secret.key);
        self.answers
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, answer)| answer.clone())
            .unwrap_or_else(|| Lookup::Absent(format!("no {key}")))
    }
}

fn load(text: &str, table: Arc<Table>, purpose: Purpose) -> Result<Suite, Vec<LoadError>> {
    let sources = VarSources {
        external: Some(External(table)),
        ..VarSources::default()
    };
    load_from(text, &sources, purpose)
}

fn load_from(text: &str, sources: &VarSources, purpose: Purpose) -> Result<Suite, Vec<LoadError>> {
    load_bytes(Path::new("s.yaml"), text.as_bytes(), sources, purpose)
}

fn table(answers: Vec<(&'static str, Lookup)>) -> Arc<Table> {
    Arc::new(Table {
        answers,
        ..Table::default()
    })
}

const SUITE: &str = r#"id: s
title: secrets
kubernetes: {context: "${cluster}"}
variables:
  cluster: homelab
  ns: data
  password:
    kubernetes_secret: {namespace: "${ns}", name: app, key: password}
  port:
    kubernetes_secret: {namespace: "${ns}", name: app, key: port}
    secret: false
  dsn: "postgres://app:${password}@db:${port}/app"
  fallback:
    kubernetes_secret: {namespace: data, name: gone, key: x}
    default: from-the-default-9
  missing:
    kubernetes_secret: {namespace: data, name: app, key: nope}
checks:
  - id: login
    title: uses the password and a typed port
    tcp: {host: db, port: "${port}"}
  - id: uses-dsn
    title: uses a default built from a Secret value
    command: {run: ["true", "${dsn}"]}
  - id: uses-fallback
    title: uses the default
    command: {run: ["true", "${fallback}"]}
  - id: uses-missing
    title: uses a key that is not there
    command: {run: ["true", "${missing}"]}
"#;

#[test]
fn secret_values_are_read_through_the_suites_context_and_used_anywhere() {
    let answers = table(vec![
        ("data/app/password", Lookup::Found("S3cret-from-k8s".into())),
        ("data/app/port", Lookup::Found("6432".into())),
    ]);
    let suite = load(SUITE, answers.clone(), Purpose::Run).unwrap();
    assert_eq!(suite.kube_context.as_deref(), Some("homelab"));
    let asked = answers.asked.lock().unwrap().clone();
    assert!(asked
        .iter()
        .all(|(context, _)| context.as_deref() == Some("homelab")));
    // `${ns}` in the reference is expanded before asking.
    assert!(asked
        .iter()
        .any(|(_, s)| s.namespace == "data" && s.key == "password"));
    let check = |id: &str| suite.checks.iter().find(|c| c.decl.id == id).unwrap();
    // A Secret value in a typed field (a port) and in a default built from it.
    assert!(check("login").unavailable.is_none());
    assert_eq!(check("login").decl.check.target(), "db:6432");
    assert!(check("uses-dsn").unavailable.is_none());
    // A missing Secret with a default: the default applies.
    assert!(check("uses-fallback").unavailable.is_none());
    // A missing key without a default: the check that uses it will not run, saying why.
    let (name, why) = check("uses-missing").unavailable.clone().unwrap();
    assert_eq!(name, "missing");
    assert_eq!(why.message, "no data/app/nope");
    assert!(!why.skip);
    assert!(
        why.hint
            .as_deref()
            .unwrap()
            .contains("`--set missing=VALUE`"),
        "{why:?}"
    );
}

#[test]
fn secret_values_are_redacted_and_short_ones_refused_without_showing_them() {
    let answers = table(vec![
        ("data/app/password", Lookup::Found("S3cret-from-k8s".into())),
        ("data/app/user", Lookup::Found("tiny1".into())),
    ]);
    let redactor = Redactor::default();
    let sources = VarSources {
        external: Some(External(answers)),
        ..VarSources::default()
    };
    let dir = std::env::temp_dir().join(format!("attest-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.yaml");
    let text = format!(
        "{}  - id: uses-user\n    title: a short secret\n    command: {{run: [\"true\", \"${{user}}\"]}}\n",
        SUITE.replace(
            "checks:\n",
            "  user:\n    kubernetes_secret: {namespace: data, name: app, key: user}\nchecks:\n"
        )
    );
    std::fs::write(&path, text).unwrap();
    let suites = load_all_for(&[path], &sources, &redactor, Purpose::Run).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        redactor.redact("pw S3cret-from-k8s"),
        format!("pw {}", crate::redact::MASK)
    );
    // Too short to mask safely: not used, and the reason does not quote it.
    let uses_user = suites[0].checks.last().unwrap();
    let (name, why) = uses_user.unavailable.clone().unwrap();
    assert_eq!(name, "user");
    assert!(
        why.message.contains("Secret data/app key `user`"),
        "{why:?}"
    );
    assert!(!why.message.contains("tiny1"), "{why:?}");
}

#[test]
fn an_unreadable_secret_blocks_only_the_checks_using_it() {
    let answers = table(vec![(
        "data/app/password",
        Lookup::Unavailable(Unavailable {
            message: "cannot read Secret data/app key `password`: forbidden".into(),
            hint: Some("grant get on secrets".into()),
            skip: false,
        }),
    )]);
    let suite = load(SUITE, answers, Purpose::Run).unwrap();
    let check = |id: &str| suite.checks.iter().find(|c| c.decl.id == id).unwrap();
    // `dsn` is built from `password`: its users are blocked with the same reason.
    let (name, why) = check("uses-dsn").unavailable.clone().unwrap();
    assert_eq!(name, "dsn");
    assert!(why.message.contains("forbidden"), "{why:?}");
    assert!(check("uses-fallback").unavailable.is_none());
}

#[test]
fn listing_reads_no_secret() {
    let answers = table(Vec::new());
    let suite = load(SUITE, answers.clone(), Purpose::Inspect).unwrap();
    assert_eq!(suite.checks.len(), 4);
    assert!(answers.asked.lock().unwrap().is_empty());
}

#[test]
fn without_a_cluster_the_checks_using_secret_values_are_skipped() {
    let sources = VarSources::default();
    let suite = load_from(SUITE, &sources, Purpose::Run).unwrap();
    let (_, why) = suite.checks[0].unavailable.clone().unwrap();
    assert!(why.skip, "{why:?}");
    assert!(why.message.contains("needs the Kubernetes API"), "{why:?}");
}

#[test]
fn a_context_cannot_come_from_a_secret_even_through_a_default() {
    for context in ["${password}", "${via_default}"] {
        let text = SUITE
            .replace(
                r#"context: "${cluster}""#,
                &format!(r#"context: "{context}""#),
            )
            .replace(
                "  ns: data\n",
                "  ns: data\n  via_default: \"${password}\"\n",
            );
        for purpose in [Purpose::Run, Purpose::Inspect] {
            let answers = table(vec![(
                "data/app/password",
                Lookup::Found("S3cret-from-k8s".into()),
            )]);
            let errors = load(&text, answers, purpose).unwrap_err();
            assert!(
                errors.iter().any(|e| e.line == Some(3)
                    && e.message
                        .contains("`kubernetes.context` must be known before the run")),
                "{context} {purpose:?}: {errors:?}"
            );
        }
    }
}

/// The suite with the password's namespace written as `namespace`, loaded for `purpose`: its
/// problems, which must include `expected`.
fn assert_namespace_refused(namespace: &str, extra_checks: &str, purpose: Purpose, expected: &str) {
    let text = SUITE
        .replace(
            r#"namespace: "${ns}", name: app, key: password"#,
            &format!(r#"namespace: "{namespace}", name: app, key: password"#),
        )
        .replace("checks:\n", &format!("checks:\n{extra_checks}"));
    let errors = load(&text, table(Vec::new()), purpose).unwrap_err();
    assert!(
        errors.iter().any(|e| e.message.contains(expected)),
        "{errors:?}"
    );
}

#[test]
fn attest_check_finds_mistakes_in_secret_references() {
    assert_namespace_refused(
        "${nss}",
        "",
        Purpose::Inspect,
        "unknown variable `nss` in `kubernetes_secret` of `password`",
    );
}

#[test]
fn a_secret_reference_cannot_use_a_registered_value() {
    assert_namespace_refused(
        "${found_stdout}",
        "  - id: finder\n    title: finds the namespace\n    register: found\n    command: {run: [echo, data]}\n",
        Purpose::Run,
        "`kubernetes_secret` of `password` is read before the run",
    );
}

/// A name filter that matches no check.
struct NoneSelected;
impl SelectsChecks for NoneSelected {
    fn selects(&self, _suite: &str, _check: &str, _kind: &str, _ignored: bool) -> bool {
        false
    }
}

#[test]
fn suites_no_selected_check_is_in_read_no_secret() {
    let answers = table(Vec::new());
    let sources = VarSources {
        external: Some(External(answers.clone())),
        selection: Some(Selects(Arc::new(NoneSelected))),
        ..VarSources::default()
    };
    let suite = load_from(SUITE, &sources, Purpose::Run).unwrap();
    assert_eq!(suite.checks.len(), 4);
    assert!(answers.asked.lock().unwrap().is_empty());
}

#[test]
fn a_vars_file_name_no_suite_uses_is_a_warning_naming_the_near_name() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("s.yaml");
    std::fs::write(
        &suite,
        "id: s\ntitle: s\nvariables:\n  db_host: localhost\nchecks:\n  - id: c\n    title: c\n    command: {run: 'echo ${db_host}'}\n",
    )
    .unwrap();
    // The sandbox's vars file describes every service; this suite needs none of it.
    let vars = dir.path().join("sandbox.vars.yaml");
    std::fs::write(
        &vars,
        "paperless_url: http://x/\n  # comment\npg_host: 127.0.0.1\n",
    )
    .unwrap();
    let sources = VarSources {
        files: vec![vars.clone()],
        ..VarSources::default()
    };
    for purpose in [Purpose::Run, Purpose::Inspect] {
        let loaded = load_suites(
            std::slice::from_ref(&suite),
            &sources,
            &Redactor::default(),
            purpose,
        );
        let suites = loaded
            .suites
            .expect("an unused vars-file name stops nothing");
        assert_eq!(suites.len(), 1);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        let warning = &loaded.warnings[0];
        assert_eq!(
            (warning.path.as_path(), warning.line, warning.column),
            (vars.as_path(), Some(3), Some(1))
        );
        assert!(
            warning
                .message
                .contains("`pg_host` (did you mean `db_host`?)"),
            "{warning}"
        );
    }
    // An unknown `--set` name is an instruction that cannot be followed: still an error.
    let set = VarSources {
        set: vec![("pg_host".into(), "x".into())],
        ..VarSources::default()
    };
    let errors = load_suites(&[suite], &set, &Redactor::default(), Purpose::Run)
        .suites
        .unwrap_err();
    assert!(
        errors[0].to_string().contains("--set: no loaded suite"),
        "{errors:?}"
    );
}
