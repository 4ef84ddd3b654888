//! `kube`: Kubernetes objects of any kind (core kinds and CRDs, found through discovery) match
//! a partial object, field assertions, a count, or are absent. With `retry`, it polls; when it
//! gives up, the report shows the last mismatch, one bullet per field.

use std::fmt;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};
use serde_json::Value;

use super::{Kind, Permission, Verdict};
use crate::context::CheckContext;
use crate::k8s::matching::{partial_match, Disclosure, FieldAssertion};
use crate::k8s::{KubeError, Selection};
use crate::matchers::Comparison;
use crate::outcome::Mismatch;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeObjectCheck {
    /// `v1`, `apps/v1`, `postgresql.cnpg.io/v1`, `external-secrets.io/v1beta1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `PersistentVolumeClaim`, `StatefulSet`, `Cluster`, `ExternalSecret`, ...
    pub kind: String,
    /// Namespace of namespaced kinds; omit for cluster-scoped kinds or all namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// One object by name.
    #[serde(default)]
    pub name: Option<String>,
    /// A label selector: `app.kubernetes.io/name=postgresql,app.kubernetes.io/instance=postgres`.
    #[serde(default)]
    pub selector: Option<String>,
    /// A field selector: `status.phase=Running`.
    #[serde(default, rename = "fieldSelector")]
    pub field_selector: Option<String>,
    /// A partial object every selected object must match (fields not written are ignored;
    /// `null` asserts absence; list elements match in any order).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub expect: Option<Value>,
    /// Field assertions every selected object must meet: `status.phase == Bound`,
    /// `status.capacity.storage >= 8Gi`, `age(status.lastSuccessfulTime) < 26h`, or another
    /// field of the same object: `status.readyReplicas == spec.replicas` (a path under
    /// `metadata.`, `spec.` or `status.`, or any path with a leading dot; quoted text is text).
    #[serde(default)]
    pub fields: Vec<FieldAssertion>,
    /// How many objects must be selected: `3`, `>= 1`, `== 0`.
    #[serde(default)]
    pub count: Option<ObjectCount>,
    /// The selection must find nothing (a resource that must not exist).
    #[serde(default)]
    pub absent: bool,
}

impl KubeObjectCheck {
    fn selection(&self, ctx: &CheckContext) -> Result<Selection, String> {
        let expand = |v: &Option<String>| v.as_deref().map(|s| ctx.expand(s)).transpose();
        Ok(Selection {
            api_version: ctx.expand(&self.api_version)?,
            kind: ctx.expand(&self.kind)?,
            namespace: expand(&self.namespace)?,
            name: expand(&self.name)?,
            label_selector: expand(&self.selector)?,
            field_selector: expand(&self.field_selector)?,
        })
    }
}

/// How many objects a selection must find: a whole number (`3`) or a comparison with one
/// (`>= 1`), read when the suite loads.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(with = "String")]
pub struct ObjectCount {
    comparison: Comparison,
    /// As written, for messages.
    written: String,
}

impl ObjectCount {
    pub fn parse(text: &str) -> Result<ObjectCount, String> {
        let written = text.trim();
        let expected = || {
            format!("expected a whole number of objects (`3`) or a comparison with one (`>= 1`, `!= 0`), found `{written}`")
        };
        let comparison: Comparison = if written.parse::<u64>().is_ok() {
            format!("== {written}").parse()
        } else {
            written.parse()
        }
        .map_err(|_| expected())?;
        match comparison.count_problem("objects") {
            None => Ok(ObjectCount {
                comparison,
                written: written.to_owned(),
            }),
            Some(_) => Err(expected()),
        }
    }

    fn holds(&self, count: usize) -> bool {
        // A whole number compared with a whole number: it cannot fail to read.
        self.comparison
            .holds(Some(&count.to_string()))
            .unwrap_or(false)
    }
}

impl fmt::Display for ObjectCount {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for ObjectCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ObjectCount::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// `v1/PersistentVolumeClaim data/data-postgres-postgresql-0`, as Chainsaw heads a mismatch.
pub fn object_header(object: &Value) -> String {
    let text = |path: &[&str]| {
        let mut v = object;
        for key in path {
            v = &v[*key];
        }
        v.as_str().unwrap_or("").to_owned()
    };
    let namespace = text(&["metadata", "namespace"]);
    let name = text(&["metadata", "name"]);
    let place = if namespace.is_empty() {
        name
    } else {
        format!("{namespace}/{name}")
    };
    format!("{}/{} {place}", text(&["apiVersion"]), text(&["kind"]))
}

/// How a failed API request becomes a verdict: fail when a retry may help (polling goes on),
/// error when the check could not look at all.
pub fn api_verdict(error: &KubeError) -> Verdict {
    let verdict = if error.retryable() {
        Verdict::fail(error.to_string())
    } else {
        Verdict::error(error.to_string())
    };
    verdict.hint(error.hint())
}

/// What a `kube` check hands to later checks with `register: NAME`, when it selected exactly
/// one object: its name, namespace and UID, the volume a claim is bound to
/// (`spec.volumeName`), and the node a pod runs on (`spec.nodeName`); empty when the object
/// has no such field.
const OBJECT_FACTS: [(&str, &[&str]); 5] = [
    ("name", &["metadata", "name"]),
    ("namespace", &["metadata", "namespace"]),
    ("uid", &["metadata", "uid"]),
    ("volume", &["spec", "volumeName"]),
    ("node", &["spec", "nodeName"]),
];

fn with_facts(mut verdict: Verdict, object: &Value) -> Verdict {
    for (key, path) in OBJECT_FACTS {
        let value = path.iter().fold(object, |v, step| &v[*step]);
        verdict = verdict.export(key, value.as_str().unwrap_or_default());
    }
    verdict
}

impl Kind for KubeObjectCheck {
    const DESCRIPTION: &'static str = "Kubernetes objects of any kind (CRDs through discovery): a partial object, field assertions, a count, or absence; `register` exports the one selected object's name, namespace, uid, volume and node.";
    const EXPORTS: &'static [(&'static str, bool)] = &[
        ("name", false),
        ("namespace", false),
        ("uid", false),
        ("volume", false),
        ("node", false),
    ];
    fn target(&self) -> String {
        Selection {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            label_selector: self.selector.clone(),
            field_selector: self.field_selector.clone(),
        }
        .describe()
    }

    fn permissions(&self) -> Vec<Permission> {
        let permission = |verb: &str| {
            Permission::new(
                verb,
                &self.api_version,
                &self.kind,
                self.namespace.as_deref(),
            )
        };
        match &self.name {
            Some(name) => vec![permission("get").named(name)],
            None => vec![permission("list")],
        }
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let selection = match self.selection(ctx) {
            Ok(selection) => selection,
            Err(e) => return Verdict::error(e),
        };
        let access = &ctx.services.kube;
        let objects = match access.objects(&selection, ctx.remaining()).await {
            Ok(objects) => objects,
            Err(e) => return api_verdict(&e),
        };
        let described = selection.describe();

        if self.absent {
            return match objects.first() {
                None => Verdict::pass(format!("{described}: none found, as expected")),
                Some(first) => Verdict::fail(format!("{described}: {} found", objects.len()))
                    .subject(object_header(first))
                    .mismatch("(object)", "absent", "present")
                    .hint("something that must not exist does; delete it or fix the selection"),
            };
        }
        if let Some(count) = &self.count {
            if !count.holds(objects.len()) {
                return Verdict::fail(format!(
                    "{described}: {} object(s), expected {count}",
                    objects.len()
                ))
                .expected(format!("count {count}"))
                .found(objects.len().to_string());
            }
        } else if objects.is_empty() {
            return Verdict::fail(format!("{described}: not found"))
                .expected("at least one object")
                .found("none")
                .hint(if selection.name.is_some() {
                    "check the name and namespace (`kubectl get … -A`); it may not be created yet"
                } else {
                    "no object matches the selector: check its labels (`kubectl get … --show-labels`)"
                });
        }

        let now = SystemTime::now();
        // Per object: its header, and its mismatches or what was measured for the evidence.
        let mut differing: Vec<(String, Vec<Mismatch>)> = Vec::new();
        let mut measured: Vec<Option<String>> = vec![None; self.fields.len()];
        for object in &objects {
            let mut mismatches = Vec::new();
            if let Some(expected) = &self.expect {
                partial_match(expected, object, &mut mismatches);
            }
            for (assertion, note) in self.fields.iter().zip(measured.iter_mut()) {
                match assertion.judge(object, now) {
                    Ok(measure) => *note = measure,
                    Err(mismatch) => mismatches.push(mismatch),
                }
            }
            if !mismatches.is_empty() {
                differing.push((object_header(object), mismatches));
            }
        }
        let Some((first_header, first_mismatches)) = differing.first() else {
            let shown = Disclosure::of_all(&objects);
            let checked: Vec<String> = self
                .fields
                .iter()
                .zip(&measured)
                .map(|(assertion, note)| {
                    let written = assertion.describe(shown);
                    // What was measured is one object's: shown when there is one.
                    match note {
                        Some(note) if objects.len() == 1 => format!("{written} ({note})"),
                        _ => written,
                    }
                })
                .collect();
            let what = if objects.len() == 1 {
                object_header(&objects[0])
            } else {
                format!("{} objects of {described}", objects.len())
            };
            let mut summary = format!("{what} as expected");
            if !checked.is_empty() {
                summary.push_str(&format!(": {}", checked.join(", ")));
            }
            let verdict = Verdict::pass(summary).measure("objects", objects.len() as f64);
            // Facts of one object only: of several, which one a later check means is unknown.
            return match objects.as_slice() {
                [only] => with_facts(verdict, only),
                _ => verdict,
            };
        };
        let first = &first_mismatches[0];
        let mut summary = format!("{first_header}: {} is {}", first.path, first.found);
        if first_mismatches.len() > 1 {
            summary.push_str(&format!(
                " (and {} more field(s))",
                first_mismatches.len() - 1
            ));
        }
        if objects.len() > 1 {
            summary.push_str(&format!(
                "; {} of {} objects differ",
                differing.len(),
                objects.len()
            ));
        }
        let mut verdict = Verdict::fail(summary).subject(first_header.clone());
        for (header, mismatches) in differing {
            verdict
                .evidence
                .mismatches
                .extend(mismatches.into_iter().map(|m| Mismatch {
                    subject: Some(header.clone()),
                    ..m
                }));
        }
        verdict
            .measure("objects", objects.len() as f64)
            .hint("`kubectl get -o yaml` shows the whole object; with `retry:` the check polls until it matches")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_exports_one_objects_facts() {
        let claim = serde_json::json!({
            "metadata": {"name": "data-0", "namespace": "data", "uid": "u-1"},
            "spec": {"volumeName": "pvc-523f"},
        });
        let verdict = with_facts(Verdict::pass("ok"), &claim);
        let exported: Vec<(&str, &str)> = verdict
            .exports
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        assert_eq!(
            exported,
            [
                ("name", "data-0"),
                ("namespace", "data"),
                ("uid", "u-1"),
                ("volume", "pvc-523f"),
                ("node", ""),
            ]
        );
    }

    #[test]
    fn counts_accept_a_bare_number_or_a_comparison() {
        let count = |text: &str| ObjectCount::parse(text).unwrap();
        assert!(count("3").holds(3));
        assert!(count(">= 1").holds(2));
        assert!(!count("== 0").holds(1));
        assert_eq!(count("3").to_string(), "3");
        for bad in ["lots", ">= many", "-1", "1.5", "~ /x/", "=> 1"] {
            let err = ObjectCount::parse(bad).unwrap_err();
            assert!(
                err.starts_with("expected a whole number of objects (`3`) or a comparison"),
                "{err}"
            );
        }
    }

    #[test]
    fn headers_name_the_object_like_chainsaw() {
        let pvc = serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"namespace": "data", "name": "data-postgres-postgresql-0"}});
        assert_eq!(
            object_header(&pvc),
            "v1/PersistentVolumeClaim data/data-postgres-postgresql-0"
        );
    }
}
