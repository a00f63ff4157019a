//! The Kubernetes connection: kubeconfig (`KUBECONFIG` or `~/.kube/config`) when present, else in-cluster config.

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no Kubernetes configuration found (neither a kubeconfig nor in-cluster service account)"
    )]
    InferConfig(#[source] kube::config::InferConfigError),
    #[error("failed to build a Kubernetes client")]
    BuildClient(#[source] kube::Error),
}

/// Builds a client from the environment. Does not contact the API server.
pub async fn client() -> Result<kube::Client, ConnectError> {
    let config = kube::Config::infer()
        .await
        .map_err(ConnectError::InferConfig)?;
    tracing::info!(cluster_url = %config.cluster_url, "kubernetes configuration loaded");
    kube::Client::try_from(config).map_err(ConnectError::BuildClient)
}

/// Asks the API server for its version; used to report readiness only once Kubernetes answers.
pub async fn check(
    client: &kube::Client,
) -> Result<k8s_openapi::apimachinery::pkg::version::Info, kube::Error> {
    let info = client.apiserver_version().await?;
    tracing::info!(version = %info.git_version, "kubernetes API server reachable");
    Ok(info)
}

/// Reports `service` SERVING on `health` once the API server answers, retrying with backoff until then.
pub async fn report_when_reachable(
    client: kube::Client,
    health: tonic_health::server::HealthReporter,
    service: &'static str,
    shutdown: crate::Shutdown,
) {
    let mut delay = std::time::Duration::from_millis(250);
    loop {
        match check(&client).await {
            Ok(_) => {
                health
                    .set_service_status(service, tonic_health::ServingStatus::Serving)
                    .await;
                return;
            }
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "kubernetes API server unreachable")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.wait() => return,
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(30));
    }
}

/// A DNS label as Kubernetes names use it (RFC 1123): 1 to 63 lowercase letters, digits and `-`, beginning and ending
/// with a letter or digit.
pub fn is_dns_label(value: &str) -> bool {
    (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// A DNS subdomain as Kubernetes names use it: at most 253 characters, DNS labels separated by dots.
pub fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_dns_label)
}
