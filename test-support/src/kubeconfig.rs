//! Kubeconfig files for the local control plane: the administrator's, the controller manager's, and impersonating
//! ones that act as a service account (for proving RBAC).

use std::path::Path;

/// Who a kubeconfig authenticates as.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    pub client_cert: &'a Path,
    pub client_key: &'a Path,
    /// Impersonate this user (e.g. `system:serviceaccount:ns:name`) with these groups.
    pub impersonate: Option<(String, Vec<String>)>,
}

/// A kubeconfig (YAML) for `server`, trusting `ca`, as `identity`.
pub fn render(server: &str, ca: &Path, identity: &Identity<'_>) -> String {
    let mut user = format!(
        "    client-certificate: {}\n    client-key: {}\n",
        identity.client_cert.display(),
        identity.client_key.display()
    );
    if let Some((name, groups)) = &identity.impersonate {
        user.push_str(&format!("    as: {name}\n"));
        if !groups.is_empty() {
            user.push_str("    as-groups:\n");
            for group in groups {
                user.push_str(&format!("    - {group}\n"));
            }
        }
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {server}\n    \
         certificate-authority: {ca}\nusers:\n- name: user\n  user:\n{user}contexts:\n- name: local\n  context:\n    \
         cluster: local\n    user: user\n    namespace: default\ncurrent-context: local\n",
        ca = ca.display(),
    )
}

/// The user and groups Kubernetes gives the service account `namespace/name`.
pub fn service_account_identity(namespace: &str, name: &str) -> (String, Vec<String>) {
    (
        format!("system:serviceaccount:{namespace}:{name}"),
        vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_owned(),
        ],
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("failed to read {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid kubeconfig")]
    Parse(#[from] kube::config::KubeconfigError),
    #[error("failed to build a Kubernetes client")]
    Build(#[from] kube::Error),
}

/// Builds a client from kubeconfig YAML.
pub async fn client_from_yaml(yaml: &str) -> Result<kube::Client, ClientError> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Builds a client from a kubeconfig file.
pub async fn client_from_file(path: &Path) -> Result<kube::Client, ClientError> {
    let yaml = std::fs::read_to_string(path).map_err(|source| ClientError::Read {
        path: path.to_owned(),
        source,
    })?;
    client_from_yaml(&yaml).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonating_kubeconfig_parses_with_user_and_groups() {
        let (user, groups) = service_account_identity("store-platform", "provisioner");
        let yaml = render(
            "https://127.0.0.1:6443",
            Path::new("/tmp/ca.crt"),
            &Identity {
                client_cert: Path::new("/tmp/a.crt"),
                client_key: Path::new("/tmp/a.key"),
                impersonate: Some((user, groups)),
            },
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&yaml).expect("valid kubeconfig");
        let auth = parsed.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(
            auth.impersonate.as_deref(),
            Some("system:serviceaccount:store-platform:provisioner")
        );
        assert_eq!(auth.impersonate_groups.as_ref().map(Vec::len), Some(3));
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .and_then(|c| c.server.as_deref()),
            Some("https://127.0.0.1:6443")
        );
    }
}
