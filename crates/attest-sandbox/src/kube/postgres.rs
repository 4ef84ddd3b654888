//! The throwaway PostgreSQL as the testbed shows it: where port-forward and exec reach it,
//! the stories' Secrets with its real passwords, and its StatefulSet on the real nodes.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::fixtures::yaml_escape;
use super::util::{set_mode, write_private};
use super::{nodes, render, KubeTestbed};

/// The PostgreSQL that port-forward and exec reach, and the passwords the cluster's Secrets
/// hold (the stories' `postgres-postgresql` and `paperless-secrets`).
#[derive(Clone, Debug)]
pub struct PostgresTarget {
    pub host: String,
    pub port: u16,
    pub superuser_password: String,
    pub paperless_password: String,
    /// Where psql lives, put first on PATH of `kubectl exec` (optional).
    pub bin_dir: Option<PathBuf>,
}

impl KubeTestbed {
    /// The host folder the stories' PostgreSQL keeps its data in when it runs on the real
    /// nodes (its PersistentVolume's hostPath).
    pub fn postgres_volume(&self) -> PathBuf {
        self.path.join("volumes").join(render::POSTGRES_CLAIM)
    }

    /// Rewrites the manifests of the stories' PostgreSQL (02-storage.yaml, 10-postgres-bitnami.yaml)
    /// for the real nodes ([`render::postgres_on_real_nodes`]) and makes its volume: a folder
    /// owned by the image's uid 1001, as the chart's fsGroup would make it on NFS.
    pub(super) fn postgres_on_real_nodes(&self, manifests: &Path) -> Result<(), String> {
        let volume = self.postgres_volume();
        fs::create_dir_all(&volume)
            .map_err(|e| format!("cannot create {}: {e}", volume.display()))?;
        std::os::unix::fs::chown(&volume, Some(1001), Some(1001))
            .map_err(|e| format!("cannot give {} to uid 1001: {e}", volume.display()))?;
        set_mode(&volume, 0o700)?;
        let mut changed = 0;
        for name in ["02-storage.yaml", "10-postgres-bitnami.yaml"] {
            let path = manifests.join(name);
            let file = path.display().to_string();
            let json =
                self.kubectl_output(&["create", "--dry-run=client", "-o", "json", "-f", &file])?;
            // One JSON document per object, one after the other: made a List.
            let items = serde_json::Deserializer::from_str(&json)
                .into_iter::<Value>()
                .collect::<Result<Vec<Value>, _>>()
                .map_err(|e| format!("kubectl printed JSON we cannot read: {e}"))?;
            let mut list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            changed += render::postgres_on_real_nodes(&mut list, nodes::TAINT, &volume);
            // JSON is YAML: the file keeps its name and its place in the apply order.
            write_private(&path, &list.to_string())?;
        }
        match changed {
            2 => Ok(()),
            n => Err(format!(
                "fixtures/kubernetes: expected the StatefulSet data/postgres-postgresql and the PersistentVolume of its claim {}, changed {n} objects",
                render::POSTGRES_CLAIM
            )),
        }
    }
}

/// The Secrets of the stories, from the real passwords; the ones external-secrets would have
/// created get random values.
pub(super) fn secrets(pg: &PostgresTarget) -> String {
    let random = || {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..32)
            .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
            .collect::<String>()
    };
    let secret = |namespace: &str, name: &str, data: &[(&str, String)], labels: &str| {
        let data: String = data
            .iter()
            .map(|(k, v)| format!("  {k}: \"{}\"\n", yaml_escape(v)))
            .collect();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{labels}type: Opaque\nstringData:\n{data}---\n"
        )
    };
    let helm = "  labels:\n    app.kubernetes.io/instance: postgres\n    app.kubernetes.io/managed-by: Helm\n    app.kubernetes.io/name: postgresql\n";
    let eso = "  labels:\n    reconcile.external-secrets.io/managed: \"true\"\n";
    let cnpg = "  labels:\n    cnpg.io/cluster: paperless-ngx-db\n    cnpg.io/reload: \"true\"\n";
    let mut text = String::from(
        "# Generated at start from the throwaway PostgreSQL's real passwords; never committed.\n",
    );
    text += &secret(
        "data",
        "postgres-postgresql",
        &[("postgres-password", pg.superuser_password.clone())],
        helm,
    );
    text += &secret(
        "docs",
        "paperless-secrets",
        &[
            ("PAPERLESS_DBPASS", pg.paperless_password.clone()),
            ("PAPERLESS_SECRET_KEY", random()),
        ],
        "",
    );
    let app = [
        ("username", "paperless-ngx".to_owned()),
        ("password", pg.paperless_password.clone()),
        ("dbname", "paperless-ngx".to_owned()),
        ("host", "paperless-ngx-db-rw".to_owned()),
        ("port", "5432".to_owned()),
    ];
    text += &secret("paperless-ngx", "paperless-ngx-db-app", &app, cnpg);
    for (name, keys) in [
        ("paperless-ngx-admin", &["username", "password"][..]),
        ("paperless-ngx-secret-key", &["key"]),
        ("paperless-ngx-redis", &["password"]),
        ("paperless-ngx-restic", &["password"]),
        (
            "paperless-ngx-postgres-s3",
            &["ACCESS_KEY_ID", "ACCESS_SECRET_KEY"],
        ),
        (
            "paperless-ngx-files-s3",
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        ),
    ] {
        let data: Vec<(&str, String)> = keys.iter().map(|k| (*k, random())).collect();
        text += &secret("paperless-ngx", name, &data, eso);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hold_the_real_passwords_escaped() {
        let pg = PostgresTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            superuser_password: "s\"p".into(),
            paperless_password: "pp".into(),
            bin_dir: None,
        };
        let text = secrets(&pg);
        assert!(text.contains("  postgres-password: \"s\\\"p\"\n"));
        assert!(text.contains("  PAPERLESS_DBPASS: \"pp\"\n"));
    }
}
