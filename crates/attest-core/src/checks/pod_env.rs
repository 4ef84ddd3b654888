//! `pod-env`: the effective environment of a workload's container, as written in its spec:
//! literal values and where the others come from (`valueFrom` a Secret or ConfigMap key,
//! `envFrom`). e.g. `PAPERLESS_DBENGINE=postgresql`, `PAPERLESS_DBPASS` from Secret
//! `paperless-secrets` key `PAPERLESS_DBPASS`. A Secret's value is never read or printed.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::kube_object::api_verdict;
use super::{Kind, Permission, Verdict};
use crate::context::CheckContext;
use crate::k8s::Selection;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodEnvCheck {
    pub workload: Workload,
    /// Variable name → a literal value, or where the value must come from.
    #[serde(default)]
    pub expect: BTreeMap<String, EnvSource>,
    /// Variables that must not be set at all.
    #[serde(default)]
    pub absent: Vec<String>,
}

/// A Deployment, StatefulSet, DaemonSet or Pod, and which container.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub namespace: String,
    /// `Deployment` (default), `StatefulSet`, `DaemonSet` or `Pod`: a pod, or a workload whose
    /// pod template the check reads.
    #[serde(default)]
    pub kind: WorkloadKind,
    pub name: String,
    /// Container name (default: the first).
    #[serde(default)]
    pub container: Option<String>,
}

/// The kinds whose container spec `pod-env` reads: a pod's own, or a workload's pod template.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
    Pod,
}

impl WorkloadKind {
    fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Pod => "Pod",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "v1",
            _ => "apps/v1",
        }
    }

    /// Where the containers are: a pod's spec, or its template's.
    fn pod_spec(self, object: &Value) -> &Value {
        match self {
            WorkloadKind::Pod => &object["spec"],
            _ => &object["spec"]["template"]["spec"],
        }
    }
}

/// Where a variable's value must come from. Plain numbers and booleans are literal values as
/// text (`PAPERLESS_DBPORT: 5432`), as the schema says.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum EnvSource {
    /// A literal value in the spec.
    Literal(String),
    /// `{secret: NAME, key: KEY}`: `valueFrom.secretKeyRef`.
    Secret { secret: String, key: String },
    /// `{configMap: NAME, key: KEY}`: `valueFrom.configMapKeyRef`.
    ConfigMap {
        #[serde(rename = "configMap")]
        config_map: String,
        key: String,
    },
}

/// `{secret: NAME, key: KEY}` or `{configMap: NAME, key: KEY}` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvReference {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default, rename = "configMap")]
    config_map: Option<String>,
    key: String,
}

impl<'de> Deserialize<'de> for EnvSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = EnvSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a literal value, `{secret: NAME, key: KEY}` or `{configMap: NAME, key: KEY}`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvSource, E> {
                Ok(EnvSource::Literal(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvSource, E> {
                Ok(EnvSource::Literal(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvSource, E> {
                Ok(EnvSource::Literal(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvSource, E> {
                Ok(EnvSource::Literal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvSource, E> {
                Ok(EnvSource::Literal(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvSource, A::Error> {
                let reference =
                    EnvReference::deserialize(de::value::MapAccessDeserializer::new(map))?;
                match (reference.secret, reference.config_map) {
                    (Some(secret), None) => Ok(EnvSource::Secret { secret, key: reference.key }),
                    (None, Some(config_map)) => Ok(EnvSource::ConfigMap { config_map, key: reference.key }),
                    (secret, _) => Err(de::Error::custom(format!(
                        "expected `{{secret: NAME, key: KEY}}` or `{{configMap: NAME, key: KEY}}`, found {}",
                        if secret.is_some() { "both `secret` and `configMap`" } else { "neither `secret` nor `configMap`" }
                    ))),
                }
            }
        }
        d.deserialize_any(SourceVisitor)
    }
}

/// What the spec says about one variable.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    Literal(String),
    Secret {
        name: String,
        key: String,
    },
    ConfigMap {
        name: String,
        key: String,
    },
    /// From `envFrom` (all keys of a Secret or ConfigMap, which are not read).
    Bulk(String),
    Other(String),
}

impl Found {
    fn describe(&self, sensitive: bool) -> String {
        match self {
            Found::Literal(v) if sensitive => {
                format!("a literal value ({} characters)", v.chars().count())
            }
            Found::Literal(v) => format!("`{v}`"),
            Found::Secret { name, key } => format!("Secret {name} key {key}"),
            Found::ConfigMap { name, key } => format!("ConfigMap {name} key {key}"),
            Found::Bulk(from) => format!("possibly {from} (envFrom; keys not read)"),
            Found::Other(what) => what.clone(),
        }
    }
}

/// Names that usually hold secrets: their literal values are never quoted.
fn sensitive(name: &str) -> bool {
    let upper = name.to_uppercase();
    ["PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL"]
        .iter()
        .any(|w| upper.contains(w))
}

/// The container spec of a workload object.
fn container<'a>(object: &'a Value, kind: WorkloadKind, name: Option<&str>) -> Option<&'a Value> {
    let containers = kind.pod_spec(object)["containers"].as_array()?;
    match name {
        Some(name) => containers.iter().find(|c| c["name"] == name),
        None => containers.first(),
    }
}

/// Every variable the container spec sets, by name; `envFrom` sources separately.
fn environment(container: &Value) -> (BTreeMap<String, Found>, Vec<String>) {
    let mut vars = BTreeMap::new();
    for entry in container["env"].as_array().into_iter().flatten() {
        let Some(name) = entry["name"].as_str() else {
            continue;
        };
        let found = if let Some(value) = entry.get("value").and_then(Value::as_str) {
            Found::Literal(value.to_owned())
        } else if let Some(r) = entry["valueFrom"].get("secretKeyRef") {
            Found::Secret {
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                key: r["key"].as_str().unwrap_or_default().to_owned(),
            }
        } else if let Some(r) = entry["valueFrom"].get("configMapKeyRef") {
            Found::ConfigMap {
                name: r["name"].as_str().unwrap_or_default().to_owned(),
                key: r["key"].as_str().unwrap_or_default().to_owned(),
            }
        } else if entry.get("valueFrom").is_some() {
            Found::Other(format!("valueFrom {}", entry["valueFrom"]))
        } else {
            Found::Literal(String::new())
        };
        vars.insert(name.to_owned(), found);
    }
    let bulk = container["envFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|from| {
            let prefix = from["prefix"].as_str().unwrap_or("");
            let with_prefix = |what: String| match prefix {
                "" => what,
                p => format!("{what} with prefix {p}"),
            };
            if let Some(name) = from["secretRef"]["name"].as_str() {
                Some(with_prefix(format!("Secret {name}")))
            } else {
                from["configMapRef"]["name"]
                    .as_str()
                    .map(|name| with_prefix(format!("ConfigMap {name}")))
            }
        })
        .collect();
    (vars, bulk)
}

impl Kind for PodEnvCheck {
    const DESCRIPTION: &'static str = "A workload container's environment as its spec writes it: literal values and Secret/ConfigMap references.";
    fn target(&self) -> String {
        let w = &self.workload;
        format!("{} {}/{}", w.kind.name(), w.namespace, w.name)
    }

    fn permissions(&self) -> Vec<Permission> {
        let w = &self.workload;
        vec![Permission::new(
            "get",
            w.kind.api_version(),
            w.kind.name(),
            Some(&w.namespace),
        )
        .named(&w.name)]
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let w = &self.workload;
        let selection = Selection {
            api_version: w.kind.api_version().into(),
            kind: w.kind.name().into(),
            namespace: Some(w.namespace.clone()),
            name: Some(w.name.clone()),
            ..Selection::default()
        };
        let objects = match ctx.services.kube.objects(&selection, ctx.remaining()).await {
            Ok(objects) => objects,
            Err(e) => return api_verdict(&e),
        };
        let Some(object) = objects.first() else {
            return Verdict::fail(format!("{}: not found", selection.describe()))
                .hint("check the kind, name and namespace (`kubectl get deploy,sts,pod -n …`)");
        };
        let Some(container) = container(object, w.kind, w.container.as_deref()) else {
            return Verdict::fail(format!(
                "{} has no container {}",
                self.target(),
                w.container.as_deref().unwrap_or("at all")
            ));
        };
        let container_name = container["name"].as_str().unwrap_or("?").to_owned();
        let (vars, bulk) = environment(container);
        let mut verdict = Verdict::pass("");
        let mut failed = 0;
        for (name, wanted) in &self.expect {
            let found = vars.get(name).cloned();
            let matches = match (wanted, &found) {
                (EnvSource::Literal(value), Some(Found::Literal(v))) => match ctx.expand(value) {
                    Ok(value) => &value == v,
                    Err(e) => return Verdict::error(e),
                },
                (EnvSource::Secret { secret, key }, Some(Found::Secret { name, key: k })) => {
                    secret == name && key == k
                }
                (
                    EnvSource::ConfigMap { config_map, key },
                    Some(Found::ConfigMap { name, key: k }),
                ) => config_map == name && key == k,
                _ => false,
            };
            if !matches {
                failed += 1;
                let expected = match wanted {
                    EnvSource::Literal(v) if sensitive(name) => {
                        format!("a literal value ({} characters)", v.chars().count())
                    }
                    EnvSource::Literal(v) => format!("`{v}`"),
                    EnvSource::Secret { secret, key } => format!("Secret {secret} key {key}"),
                    EnvSource::ConfigMap { config_map, key } => {
                        format!("ConfigMap {config_map} key {key}")
                    }
                };
                let found = match (&found, bulk.first()) {
                    (Some(f), _) => f.describe(sensitive(name)),
                    (None, Some(_)) => Found::Bulk(bulk.join(", ")).describe(false),
                    (None, None) => "not set".to_owned(),
                };
                verdict =
                    verdict.mismatch(format!("env {name}"), expected, ctx.redactor.redact(&found));
            }
        }
        for name in &self.absent {
            if let Some(found) = vars.get(name) {
                failed += 1;
                verdict = verdict.mismatch(
                    format!("env {name}"),
                    "not set",
                    ctx.redactor.redact(&found.describe(sensitive(name))),
                );
            }
        }
        let subject = format!(
            "{}/{} {}/{} container {container_name}",
            w.kind.api_version(),
            w.kind.name(),
            w.namespace,
            w.name
        );
        if failed == 0 {
            verdict.summary = format!(
                "{subject}: {} variable(s) as expected{}",
                self.expect.len(),
                if self.absent.is_empty() {
                    String::new()
                } else {
                    format!(", {} absent", self.absent.len())
                }
            );
            verdict
        } else {
            verdict.status = crate::outcome::Status::Failed;
            let first = &verdict.evidence.mismatches[0];
            verdict.summary = format!(
                "{subject}: {} is {}{}",
                first.path,
                first.found,
                if failed > 1 {
                    format!(" (and {} more)", failed - 1)
                } else {
                    String::new()
                }
            );
            verdict
                .subject(subject)
                .hint("`kubectl get … -o yaml` shows the container's env; values from Secrets are compared by reference, never read")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sources(yaml: &str) -> Result<BTreeMap<String, EnvSource>, String> {
        use crate::node_de::{NodeDe, Scope};
        let root = crate::yaml::parse(yaml, crate::yaml::Limits::default())
            .unwrap()
            .unwrap();
        let vars = std::collections::HashMap::new();
        let scope = Scope {
            vars: &vars,
            raw: false,
        };
        BTreeMap::deserialize(NodeDe::new(&root, &scope, None)).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_numbers_and_booleans_are_literal_values() {
        let found = sources(
            "PAPERLESS_DBPORT: 5432\nDEBUG: false\nRATIO: 0.5\nNAME: paperless\nPASS: {secret: s, key: k}\nCFG: {configMap: c, key: k}\n",
        )
        .unwrap();
        let literal = |name: &str| match &found[name] {
            EnvSource::Literal(text) => text.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(literal("PAPERLESS_DBPORT"), "5432");
        assert_eq!(literal("DEBUG"), "false");
        assert_eq!(literal("RATIO"), "0.5");
        assert_eq!(literal("NAME"), "paperless");
        assert!(
            matches!(&found["PASS"], EnvSource::Secret { secret, key } if secret == "s" && key == "k")
        );
        assert!(
            matches!(&found["CFG"], EnvSource::ConfigMap { config_map, .. } if config_map == "c")
        );
        let neither = sources("X: {key: k}\n").unwrap_err();
        assert!(
            neither.contains("neither `secret` nor `configMap`"),
            "{neither}"
        );
        let both = sources("X: {secret: s, configMap: c, key: k}\n").unwrap_err();
        assert!(both.contains("both"), "{both}");
    }

    #[test]
    fn the_environment_names_each_source() {
        let deploy = json!({"spec": {"template": {"spec": {"containers": [{"name": "paperless",
            "env": [
                {"name": "PAPERLESS_DBENGINE", "value": "postgresql"},
                {"name": "PAPERLESS_DBPASS", "valueFrom": {"secretKeyRef": {"name": "paperless-secrets", "key": "PAPERLESS_DBPASS"}}}
            ],
            "envFrom": [{"secretRef": {"name": "extra"}}]}]}}}});
        let c = container(&deploy, WorkloadKind::Deployment, Some("paperless")).unwrap();
        let (vars, bulk) = environment(c);
        assert_eq!(
            vars["PAPERLESS_DBENGINE"],
            Found::Literal("postgresql".into())
        );
        assert_eq!(
            vars["PAPERLESS_DBPASS"],
            Found::Secret {
                name: "paperless-secrets".into(),
                key: "PAPERLESS_DBPASS".into()
            }
        );
        assert_eq!(bulk, vec!["Secret extra".to_owned()]);
        assert_eq!(
            Found::Literal("hunter22".into()).describe(sensitive("DB_PASSWORD")),
            "a literal value (8 characters)"
        );
    }
}
