//! The manifests of an in-cluster run (`attest job`): a ConfigMap with the suites and the
//! files they name, a Secret with the secret variables' values, and a hardened Job running
//! `attest run` on them as the ServiceAccount of [`super::rbac`].
//!
//! Secret values go into the Secret only: the ConfigMap is checked against every known secret
//! (in every form the redactor knows) and refused if one is in it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, KeyToPath, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::ByteString;

use super::rbac::Account;
use crate::redact::Redactor;
use crate::vantage;

/// Where the pod sees the ConfigMap's files.
pub const BUNDLE_DIR: &str = "/etc/attest/bundle";
/// Where the pod sees the Secret's vars file.
pub const SECRET_DIR: &str = "/etc/attest/secret";
/// The emptyDir the reports go to.
pub const REPORT_DIR: &str = "/reports";
/// The vars file of the non-secret values, in the bundle.
pub const VARS_FILE: &str = "attest-job-vars.yaml";
/// The key of the secret values' vars file in the Secret.
pub const SECRET_VARS_KEY: &str = "secret-vars.yaml";
/// A ConfigMap holds at most 1 MiB (the API server's object limit).
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// Time a run needs besides its checks' timeouts: start, discovery, the RBAC preflight,
/// Secret reads, teardown and reports.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(120);
/// UID and GID the container runs as (non-root; the "nonroot" user of distroless images).
pub const RUN_AS: i64 = 65532;

/// A file the pod needs, at its path relative to the bundle's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// `suites/story-5.5.yaml`, `fixtures/stories/5-5.md`: `/`-separated, never `..`.
    pub path: String,
    pub text: String,
}

/// Everything an in-cluster run is made of.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub account: Account,
    /// The Job's name; the ConfigMap and Secret are `<name>-suites` and `<name>-vars`.
    pub name: String,
    pub image: String,
    /// Suites and the files they name (story documents).
    pub files: Vec<BundleFile>,
    /// The suites to run, as paths in the bundle.
    pub suites: Vec<String>,
    /// Values given from outside the suites (`--set`, vars files, environment) that are not
    /// secret: into the ConfigMap's vars file.
    pub plain_vars: BTreeMap<String, String>,
    /// Values of secret variables: into the Secret only.
    pub secret_vars: BTreeMap<String, String>,
    /// More arguments of `attest run` (filter, `--skip`, `--allow-mutating`, `--target`).
    pub run_args: Vec<String>,
    /// The sum of the selected checks' timeouts (a bound whatever runs concurrently).
    pub checks_time: Duration,
    /// How long the finished Job (and its pod's logs) stays.
    pub ttl: Duration,
}

/// Why the manifests could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("`{path}` holds the value of a secret variable (or a form of it: base64, hex, URL-encoded); the ConfigMap would expose it. Move the value out of the file (a variable with `secret: true`, given by --set, --vars or the environment)")]
    SecretInFile { path: String },
    #[error("`{first}` and `{second}` would have the same ConfigMap key `{key}`; rename one")]
    KeyCollision {
        first: String,
        second: String,
        key: String,
    },
    #[error("the suites and the files they name come to {size} bytes; a ConfigMap holds at most {CONFIGMAP_LIMIT} (select fewer suites)")]
    TooLarge { size: usize },
}

/// The generated objects.
#[derive(Debug, Clone)]
pub struct JobManifests {
    pub config_map: ConfigMap,
    /// Only when some variable is secret.
    pub secret: Option<Secret>,
    pub job: Job,
}

/// A ConfigMap key for a bundle path: keys allow `[-._a-zA-Z0-9]`.
fn key_of(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            '/' => '_',
            c if c.is_ascii_alphanumeric() || "-._".contains(c) => c,
            _ => '-',
        })
        .collect()
}

/// `activeDeadlineSeconds`: every selected check at its full timeout, one after another, plus
/// [`DEADLINE_MARGIN`]. Suites run concurrently, so a run normally ends far sooner; a
/// destructive check makes the others wait, so nothing tighter is safe.
pub fn deadline(checks_time: Duration) -> Duration {
    checks_time + DEADLINE_MARGIN
}

/// The vars file for `values`, as `attest run --vars` reads it.
fn vars_file(values: &BTreeMap<String, String>) -> String {
    let mut text =
        String::from("# Values given to `attest job`; the suites' defaults apply to the rest.\n");
    // serde-saphyr quotes what a plain scalar would read as something else.
    text.push_str(&serde_saphyr::to_string(values).unwrap_or_default());
    text
}

/// Builds the ConfigMap, Secret and Job; `redactor` knows every secret value (refused in the
/// ConfigMap).
pub fn manifests(plan: &JobPlan, redactor: &Redactor) -> Result<JobManifests, JobError> {
    let mut files = plan.files.clone();
    if !plan.plain_vars.is_empty() {
        files.push(BundleFile {
            path: VARS_FILE.into(),
            text: vars_file(&plan.plain_vars),
        });
    }
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut items: Vec<KeyToPath> = Vec::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for file in &files {
        if redactor.redact(&file.text) != file.text {
            return Err(JobError::SecretInFile {
                path: file.path.clone(),
            });
        }
        let key = key_of(&file.path);
        if let Some(first) = owner.insert(key.clone(), file.path.clone()) {
            return Err(JobError::KeyCollision {
                first,
                second: file.path.clone(),
                key,
            });
        }
        items.push(KeyToPath {
            key: key.clone(),
            path: file.path.clone(),
            mode: None,
        });
        data.insert(key, file.text.clone());
    }
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > CONFIGMAP_LIMIT {
        return Err(JobError::TooLarge { size });
    }
    let account = &plan.account;
    let ns = Some(account.namespace.as_str());
    let config_name = format!("{}-suites", plan.name);
    let secret_name = format!("{}-vars", plan.name);
    let config_map = ConfigMap {
        metadata: account.meta(&config_name, ns),
        data: Some(data),
        ..ConfigMap::default()
    };
    let secret = (!plan.secret_vars.is_empty()).then(|| Secret {
        metadata: account.meta(&secret_name, ns),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            SECRET_VARS_KEY.to_owned(),
            ByteString(vars_file(&plan.secret_vars).into_bytes()),
        )])),
        ..Secret::default()
    });

    let mut args: Vec<String> = vec!["run".into()];
    args.extend(plan.suites.iter().map(|s| format!("{BUNDLE_DIR}/{s}")));
    if !plan.plain_vars.is_empty() {
        args.extend(["--vars".into(), format!("{BUNDLE_DIR}/{VARS_FILE}")]);
    }
    if secret.is_some() {
        args.extend(["--vars".into(), format!("{SECRET_DIR}/{SECRET_VARS_KEY}")]);
    }
    args.extend(["--report-dir".into(), REPORT_DIR.into()]);
    args.extend(plan.run_args.iter().cloned());

    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    let empty_dir = |name: &str, limit: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(limit.into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mut mounts = vec![
        mount("suites", BUNDLE_DIR, true),
        mount("reports", REPORT_DIR, false),
        // pg-backup's dumps and password files; the root filesystem is read-only.
        mount("tmp", "/tmp", false),
    ];
    let mut volumes = vec![
        Volume {
            name: "suites".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_name,
                items: Some(items),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("reports", "64Mi"),
        empty_dir("tmp", "1Gi"),
    ];
    if secret.is_some() {
        mounts.push(mount("vars", SECRET_DIR, true));
        volumes.push(Volume {
            name: "vars".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name),
                // Readable by the pod's group (fsGroup) only.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let env = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    };
    let field_env = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let quantities = |cpu: &str, memory: &str, storage: &str| {
        Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.into())),
            ("memory".to_owned(), Quantity(memory.into())),
            ("ephemeral-storage".to_owned(), Quantity(storage.into())),
        ]))
    };
    let seccomp = Some(SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    });
    let container = Container {
        name: "attest".into(),
        image: Some(plan.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["attest".into()]),
        args: Some(args),
        env: Some(vec![
            // Where attest runs: node-drain refuses to drain its own node, and a check's
            // `from:` is judged against the pod's namespace.
            field_env(vantage::NODE_NAME_ENV, "spec.nodeName"),
            field_env(vantage::POD_NAMESPACE_ENV, "metadata.namespace"),
            field_env(vantage::POD_NAME_ENV, "metadata.name"),
            env("HOME", "/tmp"),
            env("TMPDIR", "/tmp"),
            env("NO_COLOR", "1"),
        ]),
        resources: Some(ResourceRequirements {
            requests: quantities("100m", "128Mi", "64Mi"),
            limits: quantities("1", "512Mi", "1Gi"),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: seccomp.clone(),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let deadline = deadline(plan.checks_time);
    let job = Job {
        metadata: account.meta(&plan.name, ns),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(deadline.as_secs().max(1) as i64),
            ttl_seconds_after_finished: Some(plan.ttl.as_secs().min(i32::MAX as u64) as i32),
            template: PodTemplateSpec {
                metadata: Some(account.meta(&plan.name, None)),
                spec: Some(PodSpec {
                    service_account_name: Some(account.name.clone()),
                    // The Kubernetes checks authenticate as the ServiceAccount.
                    automount_service_account_token: Some(true),
                    restart_policy: Some("Never".into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        seccomp_profile: seccomp,
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    };
    Ok(JobManifests {
        config_map,
        secret,
        job,
    })
}

impl JobManifests {
    /// The documents to print, in the order `kubectl apply` needs them.
    pub fn documents(&self) -> Vec<(Vec<String>, serde_json::Value)> {
        let json = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
        let mut docs = vec![(
            vec![
                "The suites, the files they name, and the values given that are not secret".into(),
            ],
            json(serde_json::to_value(&self.config_map)),
        )];
        if let Some(secret) = &self.secret {
            docs.push((
                vec!["The secret variables' values (a vars file), for this Job only".into()],
                json(serde_json::to_value(secret)),
            ));
        }
        docs.push((Vec::new(), json(serde_json::to_value(&self.job))));
        docs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> JobPlan {
        JobPlan {
            account: Account {
                name: "attest".into(),
                namespace: "apps".into(),
            },
            name: "attest".into(),
            image: "attest:0.1.0".into(),
            files: vec![
                BundleFile {
                    path: "suites/a.yaml".into(),
                    text: "id: a\n".into(),
                },
                BundleFile {
                    path: "fixtures/stories/a.md".into(),
                    text: "# A\n".into(),
                },
            ],
            suites: vec!["suites/a.yaml".into()],
            plain_vars: BTreeMap::from([("pg_port".into(), "5432".into())]),
            secret_vars: BTreeMap::from([("pg_password".into(), "Sup3r-Secret-Value".into())]),
            run_args: vec!["--allow-mutating".into()],
            checks_time: Duration::from_secs(90),
            ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn the_secret_holds_secret_values_and_the_config_map_none() {
        let redactor = Redactor::default();
        redactor.add("Sup3r-Secret-Value");
        let made = manifests(&plan(), &redactor).unwrap();
        let text = crate::k8s::rbac::yaml_documents(&made.documents());
        assert!(!text.contains("Sup3r-Secret-Value"), "{text}");
        let config = made.config_map.data.unwrap();
        assert_eq!(
            config.keys().collect::<Vec<_>>(),
            [
                "attest-job-vars.yaml",
                "fixtures_stories_a.md",
                "suites_a.yaml"
            ]
        );
        assert!(config["attest-job-vars.yaml"].contains("pg_port"));
        let secret = made.secret.unwrap().data.unwrap();
        let vars = String::from_utf8(secret[SECRET_VARS_KEY].0.clone()).unwrap();
        assert!(vars.contains("pg_password: Sup3r-Secret-Value"), "{vars}");
        let spec = made.job.spec.unwrap();
        assert_eq!(spec.active_deadline_seconds, Some(210));
        assert_eq!(spec.backoff_limit, Some(0));
        let args = spec.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        assert_eq!(
            args,
            [
                "run",
                "/etc/attest/bundle/suites/a.yaml",
                "--vars",
                "/etc/attest/bundle/attest-job-vars.yaml",
                "--vars",
                "/etc/attest/secret/secret-vars.yaml",
                "--report-dir",
                "/reports",
                "--allow-mutating"
            ]
        );
    }

    #[test]
    fn a_secret_written_into_a_file_is_refused() {
        let redactor = Redactor::default();
        redactor.add("Sup3r-Secret-Value");
        let mut plan = plan();
        plan.files[0].text = "default: Sup3r-Secret-Value\n".into();
        assert_eq!(
            manifests(&plan, &redactor).unwrap_err(),
            JobError::SecretInFile {
                path: "suites/a.yaml".into()
            }
        );
        // A secret's value given as a plain variable too is refused the same way.
        let mut plan = self::plan();
        plan.plain_vars
            .insert("copy".into(), "Sup3r-Secret-Value".into());
        assert!(matches!(
            manifests(&plan, &redactor),
            Err(JobError::SecretInFile { .. })
        ));
    }

    #[test]
    fn keys_collide_loudly_and_size_is_bounded() {
        let mut plan = plan();
        plan.files.push(BundleFile {
            path: "suites_a.yaml".into(),
            text: String::new(),
        });
        assert!(matches!(
            manifests(&plan, &Redactor::default()),
            Err(JobError::KeyCollision { .. })
        ));
        let mut plan = self::plan();
        plan.files[1].text = "x".repeat(CONFIGMAP_LIMIT);
        assert!(matches!(
            manifests(&plan, &Redactor::default()),
            Err(JobError::TooLarge { .. })
        ));
    }
}
