//! The store lifecycle on the real local control plane with the simulated kubelet: create → READY with every object
//! admitted under the quota, idempotency, conflicts, tenant isolation, failures with reasons, retry, delete.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::{Job, JobTemplateSpec},
    core::v1::{
        ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service,
    },
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, ListParams},
};
use store_platform_proto::v1::{
    CreateStoreRequest, DeleteStoreRequest, Engine, GetStoreCredentialsRequest, GetStoreRequest,
    ListStoresRequest, Phase, RetryStoreRequest, StepState,
    provisioner_service_client::ProvisionerServiceClient,
};

use store_platform_runtime::record;
use store_platform_test_support::{Behaviour, Fate, TestEnv, process::http_get};
use support::{
    PUBLISHABLE_KEY, as_admin, as_tenant, create_request, unique_id, wait_for_phase,
    wait_until_gone,
};

mod support;
use tonic::{Code, Request, transport::Channel};

const STEP_DEADLINE_SECS: u64 = 20;
const RELAY_PASSWORD: &str = "relay-password-from-a-mounted-secret";

/// One provisioner for this test binary, on a thread and runtime of its own so it outlives each test's runtime.
fn provisioner() -> SocketAddr {
    provisioner_addrs().0
}

/// The shared provisioner's gRPC and metrics addresses.
fn provisioner_addrs() -> (SocketAddr, SocketAddr) {
    static ADDR: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    *ADDR.get_or_init(|| {
        // An SMTP relay, so every store here also gets its mail Secret, settings and egress rule.
        let relay_password =
            std::env::temp_dir().join(format!("lifecycle-smtp-password-{}", std::process::id()));
        std::fs::write(&relay_password, format!("{RELAY_PASSWORD}\n"))
            .expect("relay password file");
        support::spawn_provisioner(
            TestEnv::shared().clone(),
            vec![
                format!("--lease-name=provisioner-lifecycle-{}", std::process::id()),
                format!("--step-deadline={STEP_DEADLINE_SECS}s"),
                "--bootstrap-deadline=60s".to_owned(),
                "--max-stores-per-tenant=3".to_owned(),
                "--smtp-host=smtp.example.net".to_owned(),
                "--smtp-username=relay".to_owned(),
                format!("--smtp-password-file={}", relay_password.display()),
                "--smtp-from=shops@platform.example".to_owned(),
                "--smtp-egress-cidrs=203.0.113.7/32".to_owned(),
            ],
        )
    })
}

async fn api() -> ProvisionerServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", provisioner()))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the provisioner");
    ProvisionerServiceClient::new(channel)
}

/// The store's CronJob, as the API server holds it (batch/v1beta1 on Kubernetes 1.20), and one run of it started
/// by hand (as `kubectl create job --from=cronjob/wp-cron` does): its pod is admitted under the store's quota next
/// to MariaDB and WordPress, and completes.
async fn cron_runs_are_admitted(client: &kube::Client, namespace: &str) {
    let resource = ApiResource {
        group: "batch".into(),
        version: "v1beta1".into(),
        api_version: "batch/v1beta1".into(),
        kind: "CronJob".into(),
        plural: "cronjobs".into(),
    };
    let cron_job = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .get("wp-cron")
        .await
        .expect("the wp-cron CronJob");
    assert_eq!(cron_job.data["spec"]["schedule"], "*/5 * * * *");
    assert_eq!(cron_job.data["spec"]["concurrencyPolicy"], "Forbid");
    // Its script, beside it.
    let script =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), namespace)
            .get("wp-cron")
            .await
            .expect("the cron script's ConfigMap");
    assert!(script.data.expect("data")["cron.sh"].contains("wp action-scheduler run"));
    let template: JobTemplateSpec =
        serde_json::from_value(cron_job.data["spec"]["jobTemplate"].clone()).expect("template");
    let run = Job {
        metadata: kube::api::ObjectMeta {
            name: Some("wp-cron-by-hand".into()),
            labels: template.metadata.and_then(|m| m.labels),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    let jobs = Api::<Job>::namespaced(client.clone(), namespace);
    jobs.create(&Default::default(), &run)
        .await
        .expect("a cron run is admitted");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = jobs.get("wp-cron-by-hand").await.expect("the run");
        if job.status.and_then(|s| s.succeeded) == Some(1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cron run did not complete"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_store_goes_from_create_to_ready_and_is_deleted_cleanly() {
    let env = TestEnv::shared();
    let id = unique_id("life");
    let namespace = record::namespace_name(&id);
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::with_delay(Duration::from_millis(100)),
    )
    .await;
    let mut api = api().await;

    let created = api
        .create_store(as_tenant("life", create_request(&id)))
        .await
        .expect("create")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(created.phase, Phase::Pending as i32);
    assert_eq!(created.tenant, "life");
    assert_eq!(created.steps.len(), 9);

    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;
    let store = support::get_store(&mut api, "life", &id).await;
    assert_eq!(store.phase, Phase::Ready as i32);
    // The engine's steps, in its order (the CronJobs before the bootstrap, whose end is READY).
    let names: Vec<&str> = store.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, store_platform_provisioner::woocommerce::STEPS);
    assert_eq!(names.last(), Some(&"bootstrap"));
    assert!(
        store
            .steps
            .iter()
            .all(|s| s.state == StepState::Succeeded as i32 && s.finish_time.is_some())
    );
    assert_eq!(store.storefront_url, format!("http://{id}.localhost/"));
    assert_eq!(store.admin_url, format!("http://{id}.localhost/wp-admin/"));
    assert!(store.failure_reason.is_empty());

    // Every object exists, admitted under the store's quota.
    let client = env.client().await;
    let ns = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .expect("namespace");
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels[record::TENANT_LABEL], "life");
    assert_eq!(labels[record::ENGINE_LABEL], "woocommerce");
    assert!(
        Api::<ResourceQuota>::namespaced(client.clone(), &namespace)
            .get("store")
            .await
            .is_ok()
    );
    assert!(
        Api::<LimitRange>::namespaced(client.clone(), &namespace)
            .get("store")
            .await
            .is_ok()
    );
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .expect("policies");
    assert_eq!(policies.items.len(), 6, "five and mail's");
    assert!(
        Api::<Secret>::namespaced(client.clone(), &namespace)
            .get("store-credentials")
            .await
            .is_ok()
    );
    // The relay's password, copied where the store's pods read it (the file's newline is not part of it).
    let mail = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get("store-mail")
        .await
        .expect("mail secret");
    assert_eq!(
        mail.data.expect("data")["smtp-password"].0,
        RELAY_PASSWORD.as_bytes()
    );
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("wordpress-platform-files")
            .await
            .is_ok()
    );
    let mariadb = Api::<StatefulSet>::namespaced(client.clone(), &namespace)
        .get("mariadb")
        .await
        .expect("sts");
    assert_eq!(mariadb.status.and_then(|s| s.ready_replicas), Some(1));
    let wordpress = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get("wordpress")
        .await
        .expect("deploy");
    assert_eq!(wordpress.status.and_then(|s| s.available_replicas), Some(1));
    for service in ["mariadb", "wordpress"] {
        assert!(
            Api::<Service>::namespaced(client.clone(), &namespace)
                .get(service)
                .await
                .is_ok()
        );
    }
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .expect("claims");
    assert_eq!(claims.items.len(), 2, "mariadb's claim and wordpress-data");
    let ingress = Api::<Ingress>::namespaced(client.clone(), &namespace)
        .get("storefront")
        .await
        .expect("ingress");
    let host = ingress
        .spec
        .and_then(|s| s.rules)
        .and_then(|r| r[0].host.clone());
    assert_eq!(host, Some(format!("{id}.localhost")));
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("woocommerce-bootstrap")
            .await
            .is_ok()
    );
    let job = Api::<Job>::namespaced(client.clone(), &namespace)
        .get("woocommerce-bootstrap")
        .await
        .expect("job");
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
    cron_runs_are_admitted(&client, &namespace).await;

    // One event per step transition, in the store's namespace.
    let succeeded = support::step_succeeded_events(&namespace, 9).await;
    let notes: Vec<String> = succeeded.iter().filter_map(|e| e.note.clone()).collect();
    assert_eq!(succeeded.len(), 9, "{notes:?}");
    for step in store_platform_provisioner::woocommerce::STEPS {
        assert!(
            notes.iter().any(|n| n == &format!("step {step}")),
            "no event for {step}: {notes:?}"
        );
    }

    // The owner gets the generated credentials, which match the Secret.
    let credentials = api
        .get_store_credentials(as_tenant(
            "life",
            GetStoreCredentialsRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("credentials")
        .into_inner();
    assert_eq!(credentials.username, "admin");
    assert_eq!(credentials.password.len(), 32);
    assert!(
        credentials
            .password
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    );
    assert_eq!(credentials.admin_url, store.admin_url);

    // Metrics: stores by phase, step and total durations, writes by kind, API-server latency.
    let metrics = http_get(provisioner_addrs().1, "/metrics")
        .await
        .expect("scrape /metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for expected in [
        "store_platform_stores{phase=\"ready\"}",
        "store_platform_step_duration_seconds_count{step=\"bootstrap\"}",
        "store_platform_provisioning_duration_seconds_count",
        "store_platform_provisioner_writes_total{kind=\"apply\"}",
        "store_platform_provisioner_writes_total{kind=\"event\"}",
        "store_platform_kubernetes_request_duration_seconds_count{method=\"PATCH\",resource=\"statefulsets\",code=\"201\"}",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from /metrics:\n{metrics}"
        );
    }

    // Listing, by phase.
    let listed = |phase: Phase| ListStoresRequest {
        phase: phase as i32,
        ..ListStoresRequest::default()
    };
    let ready = api
        .list_stores(as_tenant("life", listed(Phase::Ready)))
        .await
        .expect("list")
        .into_inner();
    assert!(ready.stores.iter().any(|s| s.id == id));
    let failed = api
        .list_stores(as_tenant("life", listed(Phase::Failed)))
        .await
        .expect("list")
        .into_inner();
    assert!(!failed.stores.iter().any(|s| s.id == id));

    // Delete: DELETING at once, harmless twice, then gone.
    let deleting = api
        .delete_store(as_tenant(
            "life",
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(deleting.phase, Phase::Deleting as i32);
    api.delete_store(as_tenant(
        "life",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("deleting twice is harmless");
    wait_until_gone(&id).await;
    let error = api
        .get_store(as_tenant(
            "life",
            GetStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("gone");
    assert_eq!(error.code(), Code::NotFound);
    let error = api
        .delete_store(as_tenant(
            "life",
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("gone");
    assert_eq!(error.code(), Code::NotFound);
}

#[tokio::test]
async fn create_is_idempotent_and_conflicts_are_already_exists_and_tenants_are_isolated() {
    let env = TestEnv::shared();
    let id = unique_id("idem");
    env.set_kubelet_behaviour(&record::namespace_name(&id), &Behaviour::default())
        .await;
    let mut api = api().await;
    let first = api
        .create_store(as_tenant("idem", create_request(&id)))
        .await
        .expect("create")
        .into_inner();
    let again = api
        .create_store(as_tenant("idem", create_request(&id)))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(
        first.store.map(|s| (s.id, s.create_time)),
        again.store.map(|s| (s.id, s.create_time))
    );

    let mut different = create_request(&id);
    different.display_name = "Another name".into();
    let error = api
        .create_store(as_tenant("idem", different))
        .await
        .expect_err("different spec");
    assert_eq!(error.code(), Code::AlreadyExists);
    let error = api
        .create_store(as_tenant("globex", create_request(&id)))
        .await
        .expect_err("other tenant");
    assert_eq!(error.code(), Code::AlreadyExists);

    // Another tenant cannot see, reveal, retry or delete it.
    let other = |id: &str| {
        as_tenant(
            "globex",
            GetStoreRequest {
                store_id: id.to_owned(),
            },
        )
    };
    assert_eq!(
        api.get_store(other(&id)).await.expect_err("hidden").code(),
        Code::NotFound
    );
    let error = api
        .get_store_credentials(as_tenant(
            "globex",
            GetStoreCredentialsRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("hidden");
    assert_eq!(error.code(), Code::NotFound);
    let error = api
        .delete_store(as_tenant(
            "globex",
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("hidden");
    assert_eq!(error.code(), Code::NotFound);
    let listed = api
        .list_stores(as_tenant("globex", ListStoresRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(!listed.stores.iter().any(|s| s.id == id));

    // An administrator (the all-tenants scope the gateway sets) sees and manages another tenant's store.
    let listed = api
        .list_stores(as_admin("globex", ListStoresRequest::default()))
        .await
        .expect("list as administrator")
        .into_inner();
    let theirs = listed.stores.iter().find(|s| s.id == id).expect("listed");
    assert_eq!(theirs.tenant, "idem");
    api.delete_store(as_admin(
        "globex",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete as administrator");
    wait_until_gone(&id).await;
}

#[tokio::test]
async fn bad_requests_name_the_field_and_leave_nothing_behind() {
    let mut api = api().await;
    let client = TestEnv::shared().client().await;
    let cases = [
        (create_request("Bad_Id"), Code::InvalidArgument, "store_id"),
        (
            create_request("dashboard"),
            Code::InvalidArgument,
            "store_id",
        ),
        (
            CreateStoreRequest {
                admin_email: "nobody".into(),
                ..create_request("valid-but-bad-email")
            },
            Code::InvalidArgument,
            "admin_email",
        ),
    ];
    for (request, code, mention) in cases {
        let id = request.store_id.clone();
        let error = api
            .create_store(as_tenant("bad", request))
            .await
            .expect_err("rejected");
        assert_eq!(error.code(), code, "{id}: {}", error.message());
        assert!(
            error.message().contains(mention),
            "{id}: {}",
            error.message()
        );
        let leftover = Api::<Namespace>::all(client.clone())
            .get_opt(&record::namespace_name(&id.to_lowercase()))
            .await
            .expect("get");
        assert!(leftover.is_none(), "{id} left a namespace behind");
    }
    let error = api
        .create_store(Request::new(create_request("no-token")))
        .await
        .expect_err("no token");
    assert_eq!(error.code(), Code::Unauthenticated);
    assert!(error.message().starts_with("authorization: "), "{error:?}");
    let mut no_tenant = as_tenant("t", create_request("no-tenant"));
    no_tenant
        .metadata_mut()
        .remove(store_platform_proto::TENANT_METADATA_KEY);
    let error = api
        .create_store(no_tenant)
        .await
        .expect_err("a caller of many tenants must name one");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .starts_with(store_platform_proto::TENANT_METADATA_KEY),
        "{error:?}"
    );
    let error = api
        .create_store(as_tenant("Not A Tenant", create_request("bad-tenant")))
        .await
        .expect_err("bad");
    assert_eq!(error.code(), Code::InvalidArgument);
    let oversized = CreateStoreRequest {
        display_name: "x".repeat(100_000),
        ..create_request("too-big")
    };
    let error = api
        .create_store(as_tenant("bad", oversized))
        .await
        .expect_err("too big");
    // The gRPC status-code specification's answer to a message over the server's limit, naming the limit.
    assert_eq!(error.code(), Code::ResourceExhausted, "{}", error.message());
    assert!(
        error
            .message()
            .contains("more than the 65536 bytes this server accepts"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn a_failed_bootstrap_job_fails_the_store_with_its_reason_and_retry_finishes_it() {
    let env = TestEnv::shared();
    let id = unique_id("retry");
    let namespace = record::namespace_name(&id);
    let broken = Fate::Fail {
        reason: "Error".into(),
        message: "bootstrap: FAILED: database wordpress unreachable".into(),
    };
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::default().pod("woocommerce-bootstrap", broken),
    )
    .await;
    let mut api = api().await;
    api.create_store(as_tenant("retry", create_request(&id)))
        .await
        .expect("create");
    wait_for_phase(&id, "failed", Duration::from_secs(120)).await;
    let store = support::get_store(&mut api, "retry", &id).await;
    assert!(
        store
            .failure_reason
            .starts_with("bootstrap: bootstrap Job failed"),
        "{}",
        store.failure_reason
    );
    assert!(
        store
            .failure_reason
            .contains("database wordpress unreachable"),
        "{}",
        store.failure_reason
    );
    let state = |name: &str| {
        store
            .steps
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.state)
            .expect("step")
    };
    assert_eq!(state("bootstrap"), StepState::Failed as i32);
    // The CronJobs come before the bootstrap (its end is READY); a cron run before WordPress is installed finds
    // nothing to do (woocommerce_scripts.rs).
    assert_eq!(state("cron"), StepState::Succeeded as i32);
    assert_eq!(state("backups"), StepState::Succeeded as i32);

    // The cause is fixed; a retry replaces the failed Job and the store finishes.
    env.set_kubelet_behaviour(&namespace, &Behaviour::default())
        .await;
    let retried = api
        .retry_store(as_tenant(
            "retry",
            RetryStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("retry")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(retried.phase, Phase::Provisioning as i32);
    assert!(retried.failure_reason.is_empty());
    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;
    let error = api
        .retry_store(as_tenant(
            "retry",
            RetryStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("a ready store is not retried");
    assert_eq!(error.code(), Code::FailedPrecondition);

    api.delete_store(as_tenant(
        "retry",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
    wait_until_gone(&id).await;
}

#[tokio::test]
async fn a_pod_that_never_becomes_ready_fails_the_store_at_the_deadline_with_the_pod_reason() {
    let env = TestEnv::shared();
    let id = unique_id("stuck");
    let namespace = record::namespace_name(&id);
    let stuck = Fate::NeverReady {
        reason: "ImagePullBackOff".into(),
        message: "Back-off pulling image \"mariadb:11.4\"".into(),
    };
    env.set_kubelet_behaviour(&namespace, &Behaviour::default().pod("mariadb-", stuck))
        .await;
    let mut api = api().await;
    api.create_store(as_tenant("stuck", create_request(&id)))
        .await
        .expect("create");
    wait_for_phase(&id, "failed", Duration::from_secs(STEP_DEADLINE_SECS + 60)).await;
    let store = support::get_store(&mut api, "stuck", &id).await;
    let reason = &store.failure_reason;
    assert!(
        reason.starts_with(&format!("mariadb not done after {STEP_DEADLINE_SECS}s")),
        "{reason}"
    );
    assert!(reason.contains("mariadb-0: ImagePullBackOff"), "{reason}");

    api.delete_store(as_tenant(
        "stuck",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
    wait_until_gone(&id).await;
}

#[tokio::test]
async fn concurrent_creates_never_take_a_tenant_past_its_limit() {
    let env = TestEnv::shared();
    let api = api().await;
    let tenant = format!("burst-{}", std::process::id());
    // A lock left behind by a replica that died holding it: broken once stale, never a dead end.
    let stale = k8s_openapi::api::core::v1::ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(store_platform_provisioner::tenant_lock::lock_name(&tenant)),
            annotations: Some(
                [(
                    "store-platform.io/acquired".to_owned(),
                    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::namespaced(env.client().await, "store-platform")
        .create(&kube::api::PostParams::default(), &stale)
        .await
        .expect("a stale lock");
    let ids: Vec<String> = (0..8).map(|_| unique_id("burst")).collect();
    let calls = ids.iter().map(|id| {
        let mut api = api.clone();
        let (id, tenant) = (id.clone(), tenant.clone());
        async move {
            api.create_store(as_tenant(&tenant, create_request(&id)))
                .await
                .map(|_| id)
        }
    });
    let results = futures::future::join_all(calls).await;
    let created: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    for result in &results {
        if let Err(error) = result {
            assert_eq!(error.code(), Code::ResourceExhausted, "{}", error.message());
        }
    }
    assert_eq!(created.len(), 3, "the limit is 3: {results:?}");
    let namespaces = Api::<Namespace>::all(env.client().await)
        .list_metadata(
            &kube::api::ListParams::default().labels(&format!("{}={tenant}", record::TENANT_LABEL)),
        )
        .await
        .expect("list");
    assert_eq!(namespaces.items.len(), 3, "only the admitted stores exist");

    let mut api = api;
    for id in &created {
        api.delete_store(as_tenant(
            &tenant,
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete");
    }
    for id in &created {
        wait_until_gone(id).await;
    }
}

#[tokio::test]
async fn a_tenant_at_its_store_limit_is_resource_exhausted() {
    let env = TestEnv::shared();
    let mut api = api().await;
    let ids: Vec<String> = (0..3).map(|_| unique_id("limit")).collect();
    for id in &ids {
        env.set_kubelet_behaviour(&record::namespace_name(id), &Behaviour::default())
            .await;
        api.create_store(as_tenant("limited", create_request(id)))
            .await
            .expect("within the limit");
    }
    let extra = unique_id("limit");
    let error = api
        .create_store(as_tenant("limited", create_request(&extra)))
        .await
        .expect_err("over the limit");
    assert_eq!(error.code(), Code::ResourceExhausted, "{}", error.message());
    assert!(error.message().contains("3 stores"), "{}", error.message());
    let leftover = Api::<Namespace>::all(env.client().await)
        .get_opt(&record::namespace_name(&extra))
        .await
        .expect("get");
    assert!(leftover.is_none(), "a refused store leaves nothing behind");
    // Re-creating an existing store is not a new store: still answered.
    api.create_store(as_tenant("limited", create_request(&ids[0])))
        .await
        .expect("idempotent at the limit");
    // Another tenant is not affected.
    let other = unique_id("limit");
    env.set_kubelet_behaviour(&record::namespace_name(&other), &Behaviour::default())
        .await;
    api.create_store(as_tenant("unlimited", create_request(&other)))
        .await
        .expect("other tenant");

    for (tenant, id) in ids
        .iter()
        .map(|id| ("limited", id))
        .chain([("unlimited", &other)])
    {
        api.delete_store(as_tenant(
            tenant,
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete");
    }
    for id in ids.iter().chain([&other]) {
        wait_until_gone(id).await;
    }
}

/// What `kubectl annotate --overwrite` does to a store's record by accident.
async fn damage_record(id: &str, spec: &str, status: &str) {
    let namespaces: Api<Namespace> = Api::all(TestEnv::shared().client().await);
    let patch = serde_json::json!({
        "metadata": {"annotations": {record::SPEC_ANNOTATION: spec, record::STATUS_ANNOTATION: status}}
    });
    namespaces
        .patch(
            &record::namespace_name(id),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("overwrite the annotations");
}

#[tokio::test]
async fn a_store_whose_record_was_overwritten_by_hand_is_failed_retryable_and_deletable_by_its_owner()
 {
    let env = TestEnv::shared();
    let id = unique_id("damaged");
    env.set_kubelet_behaviour(&record::namespace_name(&id), &Behaviour::default())
        .await;
    let mut api = api().await;
    api.create_store(as_tenant("damaged", create_request(&id)))
        .await
        .expect("create");
    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;

    damage_record(&id, "edited by hand", "{\"phase\":").await;
    let store = support::get_store(&mut api, "damaged", &id).await;
    assert_eq!(store.phase, Phase::Failed as i32);
    assert!(
        store
            .failure_reason
            .starts_with("the store's record is unreadable"),
        "{}",
        store.failure_reason
    );
    assert!(store.failure_reason.contains("cannot be recovered"));
    let listed = api
        .list_stores(as_tenant("damaged", ListStoresRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .stores;
    assert!(listed.iter().any(|s| s.id == id), "the owner lists it");
    let error = api
        .get_store(as_tenant(
            "someone-else",
            GetStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect_err("another tenant");
    assert_eq!(
        error.code(),
        Code::NotFound,
        "the tenant label still decides"
    );
    let metrics = http_get(provisioner_addrs().1, "/metrics")
        .await
        .expect("metrics");
    let unreadable = metrics
        .lines()
        .find_map(|l| l.strip_prefix("store_platform_unreadable_records "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .expect("the unreadable-records gauge");
    assert!(unreadable >= 1, "{metrics}");

    // Retry rebuilds the record and runs every step again; what the spec held alone is gone, as the reason said.
    let retried = api
        .retry_store(as_tenant(
            "damaged",
            RetryStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("retry")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(retried.phase, Phase::Provisioning as i32);
    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;
    let store = support::get_store(&mut api, "damaged", &id).await;
    assert_eq!(store.display_name, id);
    assert_eq!(store.admin_email, "");
    assert!(store.failure_reason.is_empty());

    // Damaged again, it can still be deleted.
    damage_record(&id, "{", "{").await;
    api.delete_store(as_tenant(
        "damaged",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete a damaged store");
    wait_until_gone(&id).await;
}

#[tokio::test]
async fn an_object_the_api_server_keeps_refusing_fails_the_store_with_its_words_and_retry_resumes()
{
    let env = TestEnv::shared();
    let id = unique_id("refused");
    let namespace = record::namespace_name(&id);
    // MariaDB takes 3 s to be ready: time enough to fence the namespace before the WordPress step.
    env.set_kubelet_behaviour(&namespace, &Behaviour::with_delay(Duration::from_secs(3)))
        .await;
    let mut api = api().await;
    api.create_store(as_tenant("refused", create_request(&id)))
        .await
        .expect("create");
    // Someone's quota: no Deployments in this namespace.
    let client = env.client().await;
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &namespace);
    let fence = ResourceQuota {
        metadata: kube::api::ObjectMeta {
            name: Some("no-deployments".into()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::core::v1::ResourceQuotaSpec {
            hard: Some(
                [(
                    "count/deployments.apps".to_owned(),
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity("0".into()),
                )]
                .into(),
            ),
            ..Default::default()
        }),
        status: None,
    };
    quotas
        .create(&Default::default(), &fence)
        .await
        .expect("the fence");

    // While it waits, the step says what the API server says.
    let waiting = support::wait_for_status(&id, Duration::from_secs(60), |status| {
        status
            .steps
            .iter()
            .any(|s| s.name == "wordpress" && s.message.contains("no-deployments"))
    })
    .await;
    assert_eq!(waiting.phase, record::Phase::Provisioning);
    // Past the step's deadline the store fails with those words.
    wait_for_phase(&id, "failed", Duration::from_secs(90)).await;
    let store = support::get_store(&mut api, "refused", &id).await;
    assert!(
        store.failure_reason.starts_with(&format!(
            "wordpress not done after {STEP_DEADLINE_SECS}s: failed to apply Deployment wordpress"
        )) && store.failure_reason.contains("no-deployments"),
        "{}",
        store.failure_reason
    );

    // The fence goes; a retry resumes where the store stopped.
    quotas
        .delete("no-deployments", &Default::default())
        .await
        .expect("remove the fence");
    api.retry_store(as_tenant(
        "refused",
        RetryStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("retry");
    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;
}

#[tokio::test]
async fn a_medusa_store_goes_from_create_to_ready_with_its_storefront_keyed_and_is_deleted_cleanly()
{
    let env = TestEnv::shared();
    let id = unique_id("medusa");
    let namespace = record::namespace_name(&id);
    let bootstrap = Fate::SucceedSaying {
        message: PUBLISHABLE_KEY.into(),
    };
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::with_delay(Duration::from_millis(100)).pod("medusa-bootstrap", bootstrap),
    )
    .await;
    let mut api = api().await;
    let created = api
        .create_store(as_tenant(
            "medusa",
            CreateStoreRequest {
                engine: Engine::Medusa as i32,
                ..create_request(&id)
            },
        ))
        .await
        .expect("create")
        .into_inner()
        .store
        .expect("store");
    assert_eq!(created.engine, Engine::Medusa as i32);
    let names: Vec<&str> = created.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, store_platform_provisioner::medusa::STEPS);

    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;
    let store = support::get_store(&mut api, "medusa", &id).await;
    assert!(
        store
            .steps
            .iter()
            .all(|s| s.state == StepState::Succeeded as i32 && s.finish_time.is_some())
    );
    assert_eq!(store.storefront_url, format!("http://{id}.localhost/"));
    assert_eq!(store.admin_url, format!("http://{id}.localhost/app/"));

    // Every object exists, admitted under the store's quota and limits.
    let client = env.client().await;
    let ns = Api::<Namespace>::all(client.clone())
        .get(&namespace)
        .await
        .expect("namespace");
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels[record::ENGINE_LABEL], "medusa");
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    for name in ["postgres", "redis"] {
        let set = Api::<StatefulSet>::namespaced(client.clone(), &namespace)
            .get(name)
            .await
            .expect("statefulset");
        assert_eq!(set.status.and_then(|s| s.ready_replicas), Some(1), "{name}");
    }
    for name in ["medusa-server", "medusa-worker", "storefront"] {
        let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace)
            .get(name)
            .await
            .expect("deployment");
        assert_eq!(
            deployment.status.and_then(|s| s.available_replicas),
            Some(1),
            "{name}"
        );
    }
    // The key the bootstrap reported, handed to the storefront.
    let config = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .get("storefront-config")
        .await
        .expect("storefront config");
    assert_eq!(
        config.data.expect("data")["publishable-key"],
        PUBLISHABLE_KEY.trim()
    );
    let ingress = Api::<Ingress>::namespaced(client.clone(), &namespace)
        .get("storefront")
        .await
        .expect("ingress");
    let paths: Vec<String> = ingress
        .spec
        .and_then(|s| s.rules)
        .and_then(|r| r[0].http.clone())
        .map(|h| h.paths.into_iter().filter_map(|p| p.path).collect())
        .unwrap_or_default();
    for path in ["/store", "/admin", "/auth", "/app", "/"] {
        assert!(paths.iter().any(|p| p == path), "{path} in {paths:?}");
    }

    // The owner's login is Medusa's admin: the store's address and the generated password in its Secret.
    let credentials = api
        .get_store_credentials(as_tenant(
            "medusa",
            GetStoreCredentialsRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("credentials")
        .into_inner();
    assert_eq!(credentials.admin_url, store.admin_url);
    assert_eq!(credentials.username, create_request(&id).admin_email);
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get("store-credentials")
        .await
        .expect("secret");
    let data = secret.data.expect("data");
    assert_eq!(
        data["medusa-admin-password"].0,
        credentials.password.as_bytes()
    );
    assert_eq!(credentials.password.len(), 32);

    api.delete_store(as_tenant(
        "medusa",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
    wait_until_gone(&id).await;
}

#[tokio::test]
async fn a_medusa_store_whose_bootstrap_fails_shows_medusas_error_and_retry_finishes_it() {
    let env = TestEnv::shared();
    let id = unique_id("medusa-retry");
    let namespace = record::namespace_name(&id);
    // The last line medusa_real.rs saw a real bootstrap print when its database user may not create tables.
    let broken = Fate::Fail {
        reason: "Error".into(),
        message: "bootstrap: medusa db:migrate --execute-safe-links --execute-safe-search\nbootstrap: failed: \
                  medusa db:migrate failed (exit code 1): CREATE TABLE IF NOT EXISTS mikro_orm_migrations ( id \
                  serial PRIMARY KEY, name varchar(255), executed_at timestamptz DEFAULT CURRENT_TIMESTAMP ) - \
                  permission denied for schema public\n"
            .into(),
    };
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::default().pod("medusa-bootstrap", broken),
    )
    .await;
    let mut api = api().await;
    let request = CreateStoreRequest {
        engine: Engine::Medusa as i32,
        ..create_request(&id)
    };
    api.create_store(as_tenant("medusa-retry", request))
        .await
        .expect("create");
    wait_for_phase(&id, "failed", Duration::from_secs(120)).await;
    let store = support::get_store(&mut api, "medusa-retry", &id).await;
    assert!(
        store
            .failure_reason
            .contains("permission denied for schema public"),
        "{}",
        store.failure_reason
    );
    let state = |name: &str| {
        store
            .steps
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.state)
            .expect("step")
    };
    assert_eq!(state("bootstrap"), StepState::Failed as i32);
    assert_eq!(
        state("backend"),
        StepState::Pending as i32,
        "no backend before its database is migrated"
    );

    // The cause is fixed; a retry replaces the failed Job and the store finishes, keyed.
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::default().pod(
            "medusa-bootstrap",
            Fate::SucceedSaying {
                message: PUBLISHABLE_KEY.into(),
            },
        ),
    )
    .await;
    api.retry_store(as_tenant(
        "medusa-retry",
        RetryStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("retry");
    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;

    api.delete_store(as_tenant(
        "medusa-retry",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
    wait_until_gone(&id).await;
}

#[tokio::test]
async fn a_medusa_store_deleted_while_it_migrates_leaves_nothing_behind() {
    let env = TestEnv::shared();
    let id = unique_id("medusa-gone");
    let namespace = record::namespace_name(&id);
    // A bootstrap that takes far longer than the test: the store is deleted in the middle of it.
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::default().pod(
            "medusa-bootstrap",
            Fate::NeverReady {
                reason: "Running".into(),
                message: "migrating".into(),
            },
        ),
    )
    .await;
    let mut api = api().await;
    let request = CreateStoreRequest {
        engine: Engine::Medusa as i32,
        ..create_request(&id)
    };
    api.create_store(as_tenant("medusa-gone", request))
        .await
        .expect("create");
    let client = env.client().await;
    let jobs = Api::<Job>::namespaced(client.clone(), &namespace);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while jobs
        .get_opt("medusa-bootstrap")
        .await
        .ok()
        .flatten()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the bootstrap Job never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.delete_store(as_tenant(
        "medusa-gone",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
    wait_until_gone(&id).await;
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&namespace)
            .await
            .expect("namespace lookup")
            .is_none(),
        "the namespace is gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_object_store_the_backup_calls_say_backups_are_off_and_name_the_setting() {
    let mut api = api().await;
    for status in [
        api.backup_store(as_tenant(
            "life",
            store_platform_proto::v1::BackupStoreRequest {
                store_id: "any-store".into(),
            },
        ))
        .await
        .expect_err("backups are off"),
        api.list_backups(as_tenant(
            "life",
            store_platform_proto::v1::ListBackupsRequest {
                store_id: "any-store".into(),
            },
        ))
        .await
        .expect_err("backups are off"),
        api.list_deleted_stores(as_tenant(
            "life",
            store_platform_proto::v1::ListDeletedStoresRequest {},
        ))
        .await
        .expect_err("backups are off"),
        api.create_store(as_tenant(
            "life",
            CreateStoreRequest {
                source: Some(store_platform_proto::v1::CloneSource {
                    store_id: "any-store".into(),
                    backup_id: "0123456789abcdef".into(),
                }),
                ..create_request("a-clone-of-nothing")
            },
        ))
        .await
        .expect_err("backups are off"),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains("--backup-s3-endpoint")
                && status.message().contains("backup.s3.endpoint"),
            "{status:?}"
        );
    }
    let client = TestEnv::shared().client().await;
    assert!(
        Api::<Namespace>::all(client)
            .get_opt(&store_platform_runtime::record::namespace_name(
                "a-clone-of-nothing"
            ))
            .await
            .expect("namespace lookup")
            .is_none(),
        "a refused clone leaves nothing"
    );
}
