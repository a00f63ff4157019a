//! The local control plane behaves like Kubernetes: admission (quota, limit ranges, service accounts), the
//! workload controllers with the simulated kubelet, RBAC, and namespace deletion.

use std::time::Duration;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec},
        batch::v1::{Job, JobSpec},
        core::v1::{
            ConfigMap, Container, ContainerPort, LimitRange, LimitRangeItem, LimitRangeSpec,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, PodSpec, PodTemplateSpec,
            ResourceQuota, ResourceQuotaSpec, ResourceRequirements, Secret, Service,
            ServiceAccount, ServicePort, ServiceSpec,
        },
        rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::LabelSelector},
};
use kube::{
    Api, Client, Resource,
    api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::wait::await_condition,
};
use serde::{Serialize, de::DeserializeOwned};
use store_platform_test_support::{Behaviour, Fate, TestEnv};

const MANAGER: &str = "control-plane-test";

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

fn labels(app: &str) -> std::collections::BTreeMap<String, String> {
    [("app".to_owned(), app.to_owned())].into()
}

fn pod_template(
    app: &str,
    resources: Option<ResourceRequirements>,
    restart_policy: Option<&str>,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(app)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: app.to_owned(),
                image: Some("registry.example/app:1.0".to_owned()),
                ports: Some(vec![ContainerPort {
                    container_port: 8080,
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                }]),
                resources,
                ..Container::default()
            }],
            restart_policy: restart_policy.map(str::to_owned),
            ..PodSpec::default()
        }),
    }
}

fn deployment(name: &str) -> Deployment {
    Deployment {
        metadata: meta(name),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(labels(name)),
                ..LabelSelector::default()
            },
            template: pod_template(name, None, None),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn job(name: &str) -> Job {
    Job {
        metadata: meta(name),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: pod_template(name, None, Some("Never")),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

async fn apply<K>(client: &Client, namespace: &str, object: &K) -> K
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.meta().name.clone().expect("object has a name");
    api.patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(object))
        .await
        .unwrap_or_else(|error| panic!("apply {name}: {error}"))
}

async fn wait_for<K>(api: Api<K>, name: &str, what: &str, condition: impl Fn(&K) -> bool)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(api, name, move |object: Option<&K>| {
            object.is_some_and(&condition)
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("{name}: {what} in time"))
    .unwrap_or_else(|error| panic!("{name}: watch failed: {error}"));
}

fn forbidden(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => status.message,
        other => panic!("expected 403 Forbidden, got {other}"),
    }
}

#[tokio::test]
async fn api_server_reports_version_1_20_2() {
    let client = TestEnv::shared().client().await;
    let info = client.apiserver_version().await.expect("version");
    assert_eq!(info.git_version, "v1.20.2");
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "20"));
}

#[tokio::test]
async fn workloads_become_ready_under_real_quota_and_limit_ranges() {
    let env = TestEnv::shared();
    let namespace = env.namespace("cp-workloads").await;
    let client = env.client().await;

    apply(
        &client,
        &namespace,
        &ResourceQuota {
            metadata: meta("store"),
            spec: Some(ResourceQuotaSpec {
                hard: Some(quantities(&[
                    ("requests.cpu", "2"),
                    ("requests.memory", "2Gi"),
                    ("limits.cpu", "4"),
                    ("limits.memory", "4Gi"),
                    ("pods", "10"),
                    ("persistentvolumeclaims", "2"),
                    ("requests.storage", "5Gi"),
                ])),
                ..ResourceQuotaSpec::default()
            }),
            ..ResourceQuota::default()
        },
    )
    .await;
    apply(
        &client,
        &namespace,
        &LimitRange {
            metadata: meta("store"),
            spec: Some(LimitRangeSpec {
                limits: vec![
                    LimitRangeItem {
                        type_: "Container".to_owned(),
                        default: Some(quantities(&[("cpu", "500m"), ("memory", "256Mi")])),
                        default_request: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
                        ..LimitRangeItem::default()
                    },
                    LimitRangeItem {
                        type_: "PersistentVolumeClaim".to_owned(),
                        max: Some(quantities(&[("storage", "2Gi")])),
                        ..LimitRangeItem::default()
                    },
                ],
            }),
        },
    )
    .await;
    // The quota controller must have computed usage before pods may be admitted against it.
    wait_for(
        Api::<ResourceQuota>::namespaced(client.clone(), &namespace),
        "store",
        "quota status",
        |q| q.status.as_ref().and_then(|s| s.used.as_ref()).is_some(),
    )
    .await;

    apply(&client, &namespace, &deployment("web")).await;
    apply(
        &client,
        &namespace,
        &Service {
            metadata: meta("db"),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".to_owned()),
                selector: Some(labels("db")),
                ports: Some(vec![ServicePort {
                    port: 3306,
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
    )
    .await;
    apply(
        &client,
        &namespace,
        &StatefulSet {
            metadata: meta("db"),
            spec: Some(StatefulSetSpec {
                service_name: Some("db".to_owned()),
                replicas: Some(1),
                selector: LabelSelector {
                    match_labels: Some(labels("db")),
                    ..LabelSelector::default()
                },
                template: pod_template("db", None, None),
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: meta("data"),
                    spec: Some(PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                        resources: Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                            requests: Some(quantities(&[("storage", "1Gi")])),
                            ..Default::default()
                        }),
                        ..PersistentVolumeClaimSpec::default()
                    }),
                    ..PersistentVolumeClaim::default()
                }]),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        },
    )
    .await;
    apply(&client, &namespace, &job("setup")).await;

    wait_for(
        Api::<Deployment>::namespaced(client.clone(), &namespace),
        "web",
        "available",
        |d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(1),
    )
    .await;
    wait_for(
        Api::<StatefulSet>::namespaced(client.clone(), &namespace),
        "db",
        "ready",
        |s| s.status.as_ref().and_then(|s| s.ready_replicas) == Some(1),
    )
    .await;
    wait_for(
        Api::<Job>::namespaced(client.clone(), &namespace),
        "setup",
        "complete",
        |j| j.status.as_ref().and_then(|s| s.succeeded) == Some(1),
    )
    .await;

    // LimitRanger gave the pods the namespace's defaults.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list pods");
    let resources = web.items[0].spec.as_ref().expect("spec").containers[0]
        .resources
        .clone()
        .expect("resources");
    assert_eq!(
        resources.requests.as_ref().and_then(|r| r.get("cpu")),
        Some(&Quantity("100m".into()))
    );
    assert_eq!(
        resources.limits.as_ref().and_then(|r| r.get("memory")),
        Some(&Quantity("256Mi".into()))
    );

    // The StatefulSet's claim counts against the quota.
    wait_for(
        Api::<ResourceQuota>::namespaced(client.clone(), &namespace),
        "store",
        "usage",
        |q| {
            let used = q
                .status
                .as_ref()
                .and_then(|s| s.used.clone())
                .unwrap_or_default();
            used.get("persistentvolumeclaims") == Some(&Quantity("1".into()))
                && used.get("requests.storage") == Some(&Quantity("1Gi".into()))
        },
    )
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    assert!(
        claims
            .get_opt("data-db-0")
            .await
            .expect("get claim")
            .is_some()
    );

    // Admission rejects what quota and limit ranges forbid.
    let greedy = Pod {
        metadata: meta("greedy"),
        spec: pod_template(
            "greedy",
            Some(ResourceRequirements {
                requests: Some(quantities(&[("cpu", "3"), ("memory", "128Mi")])),
                limits: Some(quantities(&[("cpu", "3"), ("memory", "128Mi")])),
                ..ResourceRequirements::default()
            }),
            None,
        )
        .spec,
        ..Pod::default()
    };
    let message = forbidden(
        pods.create(&PostParams::default(), &greedy)
            .await
            .expect_err("over quota"),
    );
    assert!(message.contains("exceeded quota"), "{message}");
    let huge_claim = PersistentVolumeClaim {
        metadata: meta("huge"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(k8s_openapi::api::core::v1::VolumeResourceRequirements {
                requests: Some(quantities(&[("storage", "3Gi")])),
                ..Default::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let message = forbidden(
        claims
            .create(&PostParams::default(), &huge_claim)
            .await
            .expect_err("over max"),
    );
    assert!(message.contains("maximum storage usage"), "{message}");

    env.delete_namespace(&namespace).await;
}

#[tokio::test]
async fn simulated_kubelet_follows_per_namespace_rules_and_their_changes() {
    let env = TestEnv::shared();
    let namespace = env.namespace("cp-kubelet").await;
    let image_pull = Fate::NeverReady {
        reason: "ImagePullBackOff".into(),
        message: "Back-off pulling image".into(),
    };
    let failing = Fate::Fail {
        reason: "Error".into(),
        message: "exit status 1".into(),
    };
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::with_delay(Duration::from_millis(200))
            .pod("stuck-", image_pull)
            .pod("broken-", failing),
    )
    .await;
    let client = env.client().await;
    apply(&client, &namespace, &deployment("stuck")).await;
    apply(&client, &namespace, &job("broken")).await;

    wait_for(
        Api::<Job>::namespaced(client.clone(), &namespace),
        "broken",
        "failed",
        |j| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let stuck = pods
        .list(&ListParams::default().labels("app=stuck"))
        .await
        .expect("list");
    let pod_name = stuck.items[0].metadata.name.clone().expect("name");
    wait_for(pods.clone(), &pod_name, "waiting on the image", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c[0].state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref())
            == Some("ImagePullBackOff")
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let status = deployments
        .get_status("stuck")
        .await
        .expect("get")
        .status
        .expect("status");
    assert_eq!(status.available_replicas.unwrap_or(0), 0);

    // The image "arrives": once the rule goes, the pod becomes ready and the Deployment available.
    env.set_kubelet_behaviour(&namespace, &Behaviour::default())
        .await;
    wait_for(deployments, "stuck", "available", |d| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(1)
    })
    .await;

    env.delete_namespace(&namespace).await;
}

#[tokio::test]
async fn rbac_binds_impersonated_service_accounts_to_their_roles() {
    let env = TestEnv::shared();
    let namespace = env.namespace("cp-rbac").await;
    let client = env.client().await;
    apply(
        &client,
        &namespace,
        &ServiceAccount {
            metadata: meta("reader"),
            ..ServiceAccount::default()
        },
    )
    .await;
    apply(
        &client,
        &namespace,
        &Role {
            metadata: meta("read-config"),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["configmaps".to_owned()]),
                verbs: vec!["get".to_owned(), "list".to_owned()],
                ..PolicyRule::default()
            }]),
        },
    )
    .await;
    apply(
        &client,
        &namespace,
        &RoleBinding {
            metadata: meta("reader"),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "Role".to_owned(),
                name: "read-config".to_owned(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: "reader".to_owned(),
                namespace: Some(namespace.clone()),
                ..Subject::default()
            }]),
        },
    )
    .await;

    let reader = env.client_as(&namespace, "reader").await;
    Api::<ConfigMap>::namespaced(reader.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .expect("the role allows listing config maps");
    let message = forbidden(
        Api::<Secret>::namespaced(reader.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .expect_err("secrets are not in the role"),
    );
    assert!(
        message.contains(&format!("system:serviceaccount:{namespace}:reader")),
        "{message}"
    );
    forbidden(
        Api::<ConfigMap>::namespaced(reader.clone(), "default")
            .list(&ListParams::default())
            .await
            .expect_err("the role is namespaced"),
    );

    env.delete_namespace(&namespace).await;
}

#[tokio::test]
async fn api_server_takes_hundreds_of_json_writes_and_pretty_reads_without_panicking() {
    let env = TestEnv::shared();
    let namespace = env.namespace("cp-json").await;
    let client = env.client().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    for i in 0..300 {
        let object = ConfigMap {
            metadata: meta(&format!("created-{i}")),
            data: Some(
                [(
                    "payload".to_owned(),
                    format!("{{\"i\":{i},\"text\":\"ünïcode ✓\"}}"),
                )]
                .into(),
            ),
            ..ConfigMap::default()
        };
        config_maps
            .create(&PostParams::default(), &object)
            .await
            .expect("create");
    }
    for i in 0..150 {
        let object = ConfigMap {
            metadata: meta(&format!("applied-{}", i % 50)),
            data: Some([("round".to_owned(), i.to_string())].into()),
            ..ConfigMap::default()
        };
        apply(&client, &namespace, &object).await;
    }
    for _ in 0..50 {
        let request = http::Request::get(format!(
            "/api/v1/namespaces/{namespace}/configmaps?pretty=true"
        ))
        .body(Vec::new())
        .expect("request");
        let body = client.request_text(request).await.expect("pretty list");
        assert!(
            body.contains("\n  \"kind\": \"ConfigMapList\""),
            "pretty output is indented: {body:.200}"
        );
    }
    let request = http::Request::get(format!(
        "/api/v1/namespaces/{namespace}/configmaps/applied-1"
    ))
    .header("accept", "application/yaml")
    .body(Vec::new())
    .expect("request");
    let yaml = client.request_text(request).await.expect("yaml");
    assert!(yaml.contains("round: \"101\""), "{yaml}");

    let log = std::fs::read_to_string(env.dir().join("kube-apiserver.log"))
        .expect("read the API server log");
    assert!(!log.contains("panic"), "the API server log shows a panic");
    env.delete_namespace(&namespace).await;
}
