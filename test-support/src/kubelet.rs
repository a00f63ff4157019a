//! A simulated kubelet. No container runs; instead, this watches pods and writes the status a real kubelet would
//! (`pods/status`): Running and Ready for ordinary pods, Succeeded for Job pods. The real controllers then report
//! StatefulSets, Deployments and Jobs ready or complete exactly as on a cluster.
//!
//! What happens to pods is configured per namespace in the ConfigMap `kube-system/simulated-kubelet` (one key per
//! namespace, a JSON [`Behaviour`]), so a test can set it before creating anything, and the kubelet can run in the
//! test's process or in a separately started cluster alike. A pod matching no rule becomes ready (or, in a Job,
//! succeeds) at once.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{StreamExt as _, future::BoxFuture};
use k8s_openapi::{
    api::core::v1::{
        ConfigMap, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, ContainerStatus, Node, Pod, PodCondition, PodStatus,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, ResourceExt as _,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt as _, reflector, watcher},
};
use serde::{Deserialize, Serialize};

pub const CONFIG_NAMESPACE: &str = "kube-system";
pub const CONFIG_NAME: &str = "simulated-kubelet";
const FIELD_MANAGER: &str = "simulated-kubelet";
/// The node every pod runs on, as far as the API server knows: pods are bound to it as a scheduler would bind them
/// (a pod with no node is no endpoint of its Services, and a running pod always has one).
pub const NODE_NAME: &str = "simulated-node";

/// What the kubelet does with the pods of one namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Behaviour {
    /// How long each pod takes to become ready or to finish.
    #[serde(default)]
    pub delay_ms: u64,
    /// Rules by pod-name prefix; the first match wins.
    #[serde(default)]
    pub pods: Vec<PodRule>,
}

impl Behaviour {
    /// Every pod takes `delay` to become ready or finish.
    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            pods: Vec::new(),
        }
    }

    /// Pods whose name starts with `prefix` meet `fate`.
    pub fn pod(mut self, prefix: impl Into<String>, fate: Fate) -> Self {
        self.pods.push(PodRule {
            name_prefix: prefix.into(),
            fate,
        });
        self
    }

    fn fate_of(&self, pod: &Pod) -> Fate {
        let name = pod.name_any();
        self.pods
            .iter()
            .find(|rule| name.starts_with(&rule.name_prefix))
            .map(|rule| rule.fate.clone())
            .unwrap_or_else(|| {
                if is_job_pod(pod) {
                    Fate::Succeed
                } else {
                    Fate::Ready
                }
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRule {
    pub name_prefix: String,
    pub fate: Fate,
}

/// What becomes of a pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Fate {
    /// Running, every container ready.
    Ready,
    /// Stays Pending with its containers waiting for `reason` (e.g. `ImagePullBackOff`).
    NeverReady { reason: String, message: String },
    /// Every container exits 0; the pod Succeeds.
    Succeed,
    /// Every container exits 0 having written `message` to its termination message path; the pod Succeeds.
    SucceedSaying { message: String },
    /// A container exits 1 with `reason`; the pod Fails.
    Fail { reason: String, message: String },
}

fn is_job_pod(pod: &Pod) -> bool {
    pod.owner_references()
        .iter()
        .any(|owner| owner.kind == "Job")
        || pod.labels().contains_key("job-name")
}

/// Writes `behaviour` for `namespace` into the kubelet's ConfigMap (server-side apply, one key per namespace).
pub async fn configure(
    client: &Client,
    namespace: &str,
    behaviour: &Behaviour,
) -> Result<(), kube::Error> {
    let value = serde_json::to_string(behaviour).map_err(kube::Error::SerdeError)?;
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_NAME.to_owned()),
            namespace: Some(CONFIG_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([(namespace.to_owned(), value)].into()),
        ..ConfigMap::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIG_NAMESPACE);
    // One field manager per namespace key, so concurrent tests never remove each other's keys.
    let manager = format!("{FIELD_MANAGER}-{namespace}");
    api.patch(
        CONFIG_NAME,
        &PatchParams::apply(&manager).force(),
        &Patch::Apply(&config_map),
    )
    .await?;
    Ok(())
}

async fn behaviour_for(client: &Client, namespace: &str) -> Behaviour {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIG_NAMESPACE);
    match api.get_opt(CONFIG_NAME).await {
        Ok(Some(config_map)) => config_map
            .data
            .and_then(|data| data.get(namespace).cloned())
            .and_then(|json| {
                serde_json::from_str(&json)
                    .inspect_err(|error| tracing::warn!(%namespace, %error, "unreadable kubelet behaviour; using default"))
                    .ok()
            })
            .unwrap_or_default(),
        Ok(None) => Behaviour::default(),
        Err(error) => {
            tracing::warn!(%namespace, %error, "failed to read kubelet behaviour; using default");
            Behaviour::default()
        }
    }
}

/// Whether `pod` already shows what `fate` makes of it. Terminal pods never change again.
fn settled(pod: &Pod, fate: &Fate) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if matches!(phase, "Succeeded" | "Failed") {
        return true;
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    match fate {
        Fate::Ready => phase == "Running" && ready,
        Fate::NeverReady { reason, .. } => status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|statuses| {
                statuses.iter().any(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_ref())
                        == Some(reason)
                })
            }),
        Fate::Succeed | Fate::SucceedSaying { .. } | Fate::Fail { .. } => false,
    }
}

fn condition(type_: &str, status: bool, now: &Time, reason: Option<&str>) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        last_transition_time: Some(now.clone()),
        reason: reason.map(str::to_owned),
        ..PodCondition::default()
    }
}

/// The status a kubelet would report for `pod` meeting `fate`.
pub fn pod_status(pod: &Pod, fate: &Fate, now: Timestamp) -> PodStatus {
    let now = Time(now);
    let uid = pod.uid().unwrap_or_default();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let init_containers = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let status_of = |name: &str, image: &str, state: ContainerState, ready: bool| ContainerStatus {
        name: name.to_owned(),
        image: image.to_owned(),
        image_id: format!("simulated://{image}"),
        container_id: Some(format!("simulated://{uid}/{name}")),
        ready,
        started: Some(state.running.is_some()),
        restart_count: 0,
        state: Some(state),
        ..ContainerStatus::default()
    };
    let terminated = |exit_code: i32, reason: &str, message: Option<&str>| ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(reason.to_owned()),
            message: message.map(str::to_owned),
            started_at: Some(now.clone()),
            finished_at: Some(now.clone()),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    };
    let init_statuses = init_containers
        .iter()
        .map(|c| {
            status_of(
                &c.name,
                c.image.as_deref().unwrap_or_default(),
                terminated(0, "Completed", None),
                true,
            )
        })
        .collect::<Vec<_>>();

    let (phase, ready, state, completed_reason): (&str, bool, ContainerState, Option<&str>) =
        match fate {
            Fate::Ready => (
                "Running",
                true,
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(now.clone()),
                    }),
                    ..ContainerState::default()
                },
                None,
            ),
            Fate::NeverReady { reason, message } => (
                "Pending",
                false,
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.clone()),
                        message: Some(message.clone()),
                    }),
                    ..ContainerState::default()
                },
                Some("ContainersNotReady"),
            ),
            Fate::Succeed => (
                "Succeeded",
                false,
                terminated(0, "Completed", None),
                Some("PodCompleted"),
            ),
            Fate::SucceedSaying { message } => (
                "Succeeded",
                false,
                terminated(0, "Completed", Some(message)),
                Some("PodCompleted"),
            ),
            Fate::Fail { reason, message } => (
                "Failed",
                false,
                terminated(1, reason, Some(message)),
                Some("PodFailed"),
            ),
        };
    let container_statuses = containers
        .iter()
        .map(|c| {
            status_of(
                &c.name,
                c.image.as_deref().unwrap_or_default(),
                state.clone(),
                ready,
            )
        })
        .collect();
    let hash = uid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(vec![
            condition("PodScheduled", true, &now, None),
            condition("Initialized", true, &now, None),
            condition("ContainersReady", ready, &now, completed_reason),
            condition("Ready", ready, &now, completed_reason),
        ]),
        container_statuses: Some(container_statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        host_ip: Some("127.0.0.1".to_owned()),
        pod_ip: Some(format!("10.244.{}.{}", (hash >> 8) & 0xff, hash & 0xff)),
        start_time: Some(now.clone()),
        ..PodStatus::default()
    }
}

/// Runs until `shutdown` completes.
pub async fn run(client: Client, shutdown: BoxFuture<'static, ()>) {
    register_node(&client).await;
    let (pods, writer) = reflector::store::<Pod>();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let config_events = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), CONFIG_NAMESPACE),
        watcher::Config::default().fields(&format!("metadata.name={CONFIG_NAME}")),
    )
    .default_backoff()
    .applied_objects();
    futures::pin_mut!(pod_events, config_events, shutdown);
    let in_flight = Arc::new(Mutex::new(HashSet::<String>::new()));
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            Some(event) = pod_events.next() => match event {
                Ok(pod) => schedule(&client, &in_flight, &pod),
                Err(error) => tracing::warn!(%error, "pod watch failed; retrying"),
            },
            Some(event) = config_events.next() => match event {
                // The rules changed: look at every pod again.
                Ok(_) => for pod in pods.state() {
                    schedule(&client, &in_flight, &pod);
                },
                Err(error) => tracing::warn!(%error, "kubelet configuration watch failed; retrying"),
            },
        }
    }
}

/// The Node object the pods are bound to (without it, the pod garbage collector deletes them as orphans).
async fn register_node(client: &Client) {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(NODE_NAME.to_owned()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    match Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => tracing::warn!(%error, "the simulated node was not registered"),
    }
}

/// Binds `name` to the simulated node, as the scheduler would, unless it is bound already.
async fn bind(api: &Api<Pod>, pod: &Pod, name: &str) -> Result<(), kube::Error> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some()
    {
        return Ok(());
    }
    let binding = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
    });
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => Ok(()),
        // Bound meanwhile.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error),
    }
}

/// How long a deleted pod's containers take to stop here. A real kubelet's take a moment too (their processes handle
/// SIGTERM), and a Deployment reports its replicas gone while they still stop: a controller that waits for the pods
/// themselves must look again, nothing it watches tells it when they are gone.
pub const STOPPING: Duration = Duration::from_secs(1);

/// Completes the deletion of `pod`, as a kubelet does once its containers have stopped.
fn finish_deletion(client: &Client, pod: &Pod) {
    let (Some(name), Some(namespace)) = (pod.metadata.name.clone(), pod.namespace()) else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    tokio::spawn(async move {
        tokio::time::sleep(STOPPING).await;
        let params = kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..kube::api::DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                tracing::warn!(%error, %namespace, pod = %name, "failed to remove a deleted pod")
            }
        }
    });
}

/// Starts the kubelet's work on `pod` unless it is already under way.
fn schedule(client: &Client, in_flight: &Arc<Mutex<HashSet<String>>>, pod: &Pod) {
    if pod.metadata.deletion_timestamp.is_some() {
        // A kubelet stops a deleted pod's containers and then removes the pod; these have no processes to stop.
        if pod.metadata.deletion_grace_period_seconds != Some(0) {
            finish_deletion(client, pod);
        }
        return;
    }
    if is_terminal(pod) {
        return;
    }
    let (Some(uid), Some(namespace)) = (pod.uid(), pod.namespace()) else {
        return;
    };
    if !in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid.clone())
    {
        return;
    }
    let client = client.clone();
    let in_flight = in_flight.clone();
    let name = pod.name_any();
    tokio::spawn(async move {
        if let Err(error) = advance(&client, &namespace, &name).await {
            tracing::debug!(%namespace, pod = %name, %error, "pod status not written");
        }
        in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uid);
    });
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Waits the namespace's delay, then writes the status the pod's fate calls for.
async fn advance(client: &Client, namespace: &str, name: &str) -> Result<(), kube::Error> {
    let behaviour = behaviour_for(client, namespace).await;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Some(pod) = api.get_opt(name).await? else {
        return Ok(());
    };
    if settled(&pod, &behaviour.fate_of(&pod)) {
        return Ok(());
    }
    if behaviour.delay_ms > 0 {
        // A real kubelet needs time to pull and start containers; the test asked for that time.
        tokio::time::sleep(Duration::from_millis(behaviour.delay_ms)).await;
    }
    // Read again after the delay: the rules or the pod may have changed meanwhile.
    let behaviour = behaviour_for(client, namespace).await;
    let Some(pod) = api.get_opt(name).await? else {
        return Ok(());
    };
    let fate = behaviour.fate_of(&pod);
    if settled(&pod, &fate) || pod.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    bind(&api, &pod, name).await?;
    let patch = Pod {
        status: Some(pod_status(&pod, &fate, Timestamp::now())),
        ..Pod::default()
    };
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::debug!(%namespace, pod = %name, ?fate, "pod status written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::{Container, PodSpec},
        apimachinery::pkg::apis::meta::v1::OwnerReference,
    };

    use super::*;

    fn pod(name: &str, job: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                uid: Some(format!("uid-{name}")),
                owner_references: job.then(|| {
                    vec![OwnerReference {
                        kind: "Job".to_owned(),
                        name: "bootstrap".to_owned(),
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".to_owned(),
                    image: Some("example:1".to_owned()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn pods_without_a_rule_become_ready_and_job_pods_succeed() {
        let behaviour = Behaviour::default();
        assert_eq!(behaviour.fate_of(&pod("web-1", false)), Fate::Ready);
        assert_eq!(behaviour.fate_of(&pod("bootstrap-x", true)), Fate::Succeed);
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let never = Fate::NeverReady {
            reason: "ImagePullBackOff".into(),
            message: "no such image".into(),
        };
        let behaviour = Behaviour::default()
            .pod("mariadb-", never.clone())
            .pod("mariadb-0", Fate::Ready);
        assert_eq!(behaviour.fate_of(&pod("mariadb-0", false)), never);
    }

    #[test]
    fn a_ready_status_is_settled_and_reports_every_container_ready() {
        let mut pod = pod("web-1", false);
        let status = pod_status(&pod, &Fate::Ready, Timestamp::now());
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(
            status
                .container_statuses
                .as_ref()
                .is_some_and(|s| s.iter().all(|c| c.ready))
        );
        assert!(!settled(&pod, &Fate::Ready));
        pod.status = Some(status);
        assert!(settled(&pod, &Fate::Ready));
    }

    #[test]
    fn a_failed_pod_carries_its_reason_and_exit_code() {
        let fate = Fate::Fail {
            reason: "Error".into(),
            message: "wp-cli failed".into(),
        };
        let status = pod_status(&pod("bootstrap-x", true), &fate, Timestamp::now());
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let terminated = status
            .container_statuses
            .and_then(|s| s[0].state.clone())
            .and_then(|s| s.terminated);
        assert_eq!(
            terminated.map(|t| (t.exit_code, t.message)),
            Some((1, Some("wp-cli failed".into())))
        );
    }

    #[test]
    fn behaviour_round_trips_through_json() {
        let behaviour = Behaviour::with_delay(Duration::from_millis(250)).pod(
            "bootstrap",
            Fate::Fail {
                reason: "Error".into(),
                message: "boom".into(),
            },
        );
        let json = serde_json::to_string(&behaviour).expect("serialize");
        assert_eq!(
            serde_json::from_str::<Behaviour>(&json).expect("parse"),
            behaviour
        );
    }
}
