//! The provisioner as real processes: killed with SIGKILL mid-provisioning and started again, it finishes the store
//! with nothing duplicated; with two replicas only the Lease holder reconciles, and a standby takes over; creates
//! for one tenant on two replicas at once never pass its limit.

mod support;

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet, StatefulSet},
    batch::v1::Job,
    coordination::v1::Lease,
    core::v1::{PersistentVolumeClaim, Pod, Secret},
    networking::v1::NetworkPolicy,
};
use kube::{Api, api::ListParams, runtime::wait::await_condition};
use store_platform_proto::v1::{
    DeleteStoreRequest, Phase, provisioner_service_client::ProvisionerServiceClient,
};
use store_platform_runtime::record;
use store_platform_test_support::{
    Behaviour, TestEnv,
    process::{ServiceProcess, free_port},
};
use support::{
    as_tenant, create_request, started, unique_id, wait_for_phase, wait_for_status, wait_until_gone,
};

/// A provisioner process that reconciles only `tenant`'s stores, so tests running side by side never reconcile
/// each other's stores.
fn start_provisioner(
    port: u16,
    lease: &str,
    identity: &str,
    tenant: &str,
    logs: &std::path::Path,
) -> ServiceProcess {
    start_provisioner_with(port, lease, identity, tenant, logs, &[])
}

fn start_provisioner_with(
    port: u16,
    lease: &str,
    identity: &str,
    tenant: &str,
    logs: &std::path::Path,
    extra: &[(&str, String)],
) -> ServiceProcess {
    let env = TestEnv::shared();
    let mut vars = vec![
        ("KUBECONFIG", env.kubeconfig_path().display().to_string()),
        ("GRPC_ADDR", format!("127.0.0.1:{port}")),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LEASE_NAME", lease.to_owned()),
        ("POD_NAME", identity.to_owned()),
        ("STEP_DEADLINE", "120s".to_owned()),
        (
            "RECONCILE_SELECTOR",
            format!("{}={tenant}", record::TENANT_LABEL),
        ),
    ];
    vars.extend(extra.iter().cloned());
    ServiceProcess::start("provisioner", &vars, logs)
}

async fn count<K>(namespace: &str, labels: &str) -> usize
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(TestEnv::shared().client().await, namespace)
        .list(&ListParams::default().labels(labels))
        .await
        .expect("list")
        .items
        .len()
}

async fn lease_holder(lease: &str) -> Option<String> {
    Api::<Lease>::namespaced(TestEnv::shared().client().await, "store-platform")
        .get_opt(lease)
        .await
        .expect("get lease")
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn a_provisioner_killed_mid_provisioning_finishes_the_store_when_it_returns_with_nothing_duplicated()
 {
    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let logs = tempfile::tempdir().expect("logs");
    let lease = unique_id("crash-lease");
    let id = unique_id("crash");
    let namespace = record::namespace_name(&id);
    // Each pod takes a second, so the kills below land while steps are running.
    env.set_kubelet_behaviour(
        &namespace,
        &Behaviour::with_delay(Duration::from_millis(1500)),
    )
    .await;

    let port = free_port();
    let mut provisioner = start_provisioner(port, &lease, "crash-replica", "crash", logs.path());
    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    api.create_store(as_tenant("crash", create_request(&id)))
        .await
        .expect("create");

    let mut secret_uid = None;
    for step in ["mariadb", "wordpress", "bootstrap"] {
        wait_for_status(&id, Duration::from_secs(90), |s| started(s, step)).await;
        if secret_uid.is_none() {
            let secret = Api::<Secret>::namespaced(env.client().await, &namespace)
                .get("store-credentials")
                .await
                .expect("secret exists once mariadb started");
            secret_uid = secret.metadata.uid;
        }
        provisioner.kill();
        provisioner = start_provisioner(port, &lease, "crash-replica", "crash", logs.path());
    }
    wait_for_phase(&id, "ready", Duration::from_secs(120)).await;

    let selector = format!("{}={id}", record::STORE_ID_LABEL);
    assert_eq!(count::<StatefulSet>(&namespace, &selector).await, 1);
    assert_eq!(count::<Deployment>(&namespace, "").await, 1);
    assert_eq!(
        count::<ReplicaSet>(&namespace, "").await,
        1,
        "the Deployment was never changed"
    );
    // The bootstrap Job (a cron run may have started by now too: that one is the CronJob's).
    assert_eq!(
        count::<Job>(&namespace, "app.kubernetes.io/name=woocommerce-bootstrap").await,
        1
    );
    assert_eq!(
        count::<Pod>(&namespace, "job-name=woocommerce-bootstrap").await,
        1,
        "the Job ran once"
    );
    assert_eq!(count::<PersistentVolumeClaim>(&namespace, "").await, 2);
    assert_eq!(count::<NetworkPolicy>(&namespace, "").await, 5);
    let secret = Api::<Secret>::namespaced(env.client().await, &namespace)
        .get("store-credentials")
        .await
        .expect("secret");
    assert_eq!(
        secret.metadata.uid, secret_uid,
        "credentials were never regenerated"
    );

    let mut api = ProvisionerServiceClient::new(provisioner.channel(port).await);
    api.delete_store(as_tenant(
        "crash",
        DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
    wait_until_gone(&id).await;
    assert!(provisioner.terminate(Duration::from_secs(20)), "clean exit");
}

#[tokio::test]
async fn only_the_lease_holder_reconciles_and_a_standby_takes_over_when_it_leaves() {
    let env = TestEnv::shared();
    env.ensure_namespace("store-platform").await;
    let logs = tempfile::tempdir().expect("logs");
    let lease = unique_id("ha-lease");
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start_provisioner(port_a, &lease, "replica-a", "ha", logs.path());
    let mut b = start_provisioner(port_b, &lease, "replica-b", "ha", logs.path());
    let channel_a = a.channel(port_a).await;
    let channel_b = b.channel(port_b).await;

    let leases: Api<Lease> = Api::namespaced(env.client().await, "store-platform");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(leases.clone(), &lease, |l: Option<&Lease>| {
            l.and_then(|l| l.spec.as_ref()?.holder_identity.clone())
                .is_some()
        }),
    )
    .await
    .expect("a leader in time")
    .expect("watch");
    let leader = lease_holder(&lease).await.expect("holder");
    assert!(leader == "replica-a" || leader == "replica-b", "{leader}");

    // Every replica serves the API; only the leader reconciles.
    let first = unique_id("ha");
    env.set_kubelet_behaviour(&record::namespace_name(&first), &Behaviour::default())
        .await;
    let follower_channel = if leader == "replica-a" {
        channel_b.clone()
    } else {
        channel_a.clone()
    };
    let mut follower_api = ProvisionerServiceClient::new(follower_channel);
    follower_api
        .create_store(as_tenant("ha", create_request(&first)))
        .await
        .expect("the follower serves the API");
    wait_for_phase(&first, "ready", Duration::from_secs(90)).await;
    let reporters = |events: Vec<k8s_openapi::api::events::v1::Event>| -> Vec<String> {
        events
            .into_iter()
            .filter_map(|e| e.reporting_instance)
            .collect()
    };
    let instances =
        reporters(support::step_succeeded_events(&record::namespace_name(&first), 9).await);
    assert_eq!(
        instances.len(),
        9,
        "replica-a:\n{}\nreplica-b:\n{}",
        a.logs(),
        b.logs()
    );
    assert!(
        instances.iter().all(|i| *i == leader),
        "{instances:?} vs leader {leader}"
    );

    // The leader leaves; the standby takes the Lease and finishes the next store.
    let (leaving, staying, staying_name) = if leader == "replica-a" {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    assert!(
        leaving.terminate(Duration::from_secs(20)),
        "the leader exits cleanly"
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(leases, &lease, |l: Option<&Lease>| {
            l.and_then(|l| l.spec.as_ref()?.holder_identity.clone())
                .as_deref()
                == Some(staying_name)
        }),
    )
    .await
    .expect("the standby takes over in time")
    .expect("watch");
    let second = unique_id("ha");
    env.set_kubelet_behaviour(&record::namespace_name(&second), &Behaviour::default())
        .await;
    let mut api = ProvisionerServiceClient::new(if staying_name == "replica-a" {
        channel_a
    } else {
        channel_b
    });
    api.create_store(as_tenant("ha", create_request(&second)))
        .await
        .expect("create");
    wait_for_phase(&second, "ready", Duration::from_secs(90)).await;
    let store = support::get_store(&mut api, "ha", &second).await;
    assert_eq!(store.phase, Phase::Ready as i32);

    for id in [&first, &second] {
        api.delete_store(as_tenant(
            "ha",
            DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete");
    }
    for id in [&first, &second] {
        wait_until_gone(id).await;
    }
    assert!(staying.terminate(Duration::from_secs(20)));
}

#[tokio::test]
async fn creates_for_one_tenant_on_two_replicas_at_once_never_pass_its_limit() {
    let tenant = format!("replicas-{}", std::process::id());
    let logs = tempfile::tempdir().expect("logs");
    let lease = format!("limit-{}", std::process::id());
    let limit = [("MAX_STORES_PER_TENANT", "5".to_owned())];
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = start_provisioner_with(port_a, &lease, "limit-a", &tenant, logs.path(), &limit);
    let logs_b = logs.path().join("b");
    std::fs::create_dir(&logs_b).expect("mkdir");
    let mut b = start_provisioner_with(port_b, &lease, "limit-b", &tenant, &logs_b, &limit);
    let apis = [
        ProvisionerServiceClient::new(a.channel(port_a).await),
        ProvisionerServiceClient::new(b.channel(port_b).await),
    ];
    // Twenty creates, half on each replica, all at once.
    let ids: Vec<String> = (0..20).map(|_| unique_id("replicas")).collect();
    let calls = ids.iter().enumerate().map(|(n, id)| {
        let mut api = apis[n % 2].clone();
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
            assert_eq!(
                error.code(),
                tonic::Code::ResourceExhausted,
                "{}",
                error.message()
            );
        }
    }
    assert_eq!(created.len(), 5, "the limit is 5: {results:?}");
    let namespaces =
        Api::<k8s_openapi::api::core::v1::Namespace>::all(TestEnv::shared().client().await)
            .list_metadata(
                &ListParams::default().labels(&format!("{}={tenant}", record::TENANT_LABEL)),
            )
            .await
            .expect("list");
    assert_eq!(namespaces.items.len(), 5, "only the admitted stores exist");
    let mut api = apis[0].clone();
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
    assert!(a.terminate(Duration::from_secs(20)));
    assert!(b.terminate(Duration::from_secs(20)));
}
