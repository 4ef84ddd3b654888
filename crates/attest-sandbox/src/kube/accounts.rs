//! Who may talk to the testbed: kwokctl's PKI and the admin kubeconfig, and ServiceAccounts
//! with narrow Roles (tokens, restricted kubeconfigs) for least-privilege tests.

use std::fs;
use std::path::{Path, PathBuf};

use super::KubeTestbed;

/// A ServiceAccount's credentials, as a pod running as it gets them.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub name: String,
    pub namespace: String,
    pub token: String,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// The cluster CA's PEM file.
    pub ca: PathBuf,
}

impl ServiceAccount {
    /// Writes `token`, `ca.crt` and `namespace` into `dir`, as the kubelet mounts them.
    pub fn write_mount(&self, dir: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write into {}: {e}", dir.display());
        fs::create_dir_all(dir).map_err(fail)?;
        fs::write(dir.join("token"), &self.token).map_err(fail)?;
        fs::copy(&self.ca, dir.join("ca.crt")).map_err(fail)?;
        fs::write(dir.join("namespace"), &self.namespace).map_err(fail)?;
        Ok(())
    }
}

impl KubeTestbed {
    /// kwokctl's PKI of this cluster: `ca.crt`/`ca.key`, `admin.crt`/`admin.key`.
    pub fn pki(&self) -> PathBuf {
        self.path.join(format!("work/clusters/{}/pki", self.name))
    }

    /// The admin kubeconfig (client certificate in `system:masters`), server on 127.0.0.1.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The admin kubeconfig's context (kwokctl names it after the cluster).
    pub fn context(&self) -> String {
        format!("kwok-{}", self.name)
    }

    /// A new ServiceAccount `name` in `namespace` whose Role grants only `verbs` on
    /// `resources` there, and what a pod running as it would see: a token, the API server and
    /// its CA (as mounted under /var/run/secrets/kubernetes.io/serviceaccount).
    pub fn service_account(
        &self,
        namespace: &str,
        name: &str,
        verbs: &str,
        resources: &str,
    ) -> Result<ServiceAccount, String> {
        self.kubectl_output(&["create", "serviceaccount", name, "-n", namespace])?;
        let (verbs, resources) = (format!("--verb={verbs}"), format!("--resource={resources}"));
        self.kubectl_output(&["create", "role", name, "-n", namespace, &verbs, &resources])?;
        let (role, account) = (
            format!("--role={name}"),
            format!("--serviceaccount={namespace}:{name}"),
        );
        self.kubectl_output(&[
            "create",
            "rolebinding",
            name,
            "-n",
            namespace,
            &role,
            &account,
        ])?;
        let token =
            self.kubectl_output(&["create", "token", name, "-n", namespace, "--duration=30m"])?;
        let view = |path: &str| {
            self.kubectl_output(&["config", "view", "--raw", "-o", &format!("jsonpath={path}")])
        };
        Ok(ServiceAccount {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            token: token.trim().to_owned(),
            server: view("{.clusters[0].cluster.server}")?,
            ca: PathBuf::from(view("{.clusters[0].cluster.certificate-authority}")?),
        })
    }

    /// A kubeconfig for a new ServiceAccount (see [`KubeTestbed::service_account`]), a token
    /// rather than the admin certificate, so RBAC applies: what a least-privilege user of
    /// attest would have.
    pub fn restricted_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        verbs: &str,
        resources: &str,
    ) -> Result<PathBuf, String> {
        let account = self.service_account(namespace, name, verbs, resources)?;
        let config = self.path.join(format!("{name}.kubeconfig"));
        fs::write(
            &config,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: {name}\n  user: {{token: \"{}\"}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: {name}}}\ncurrent-context: t\n",
                account.server,
                account.ca.display(),
                account.token
            ),
        )
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        Ok(config)
    }
}
