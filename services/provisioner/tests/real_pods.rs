//! A WooCommerce store and a Medusa store on a real node (`scripts/real-node.sh`): real containers from the
//! platform's own specs, with their real probes, Services, cluster DNS names, volumes and security contexts.
//!
//! WooCommerce: MariaDB and Apache+PHP WordPress images built from Debian's packages with the official images'
//! contract. WordPress reaches MariaDB by its Service name; the data survives the database pod's deletion. The
//! bootstrap needs WooCommerce and WP-CLI, which no reachable registry has, so the test image has no
//! `store-bootstrap`: the store stops at that step, FAILED with a reason that says so, which this test checks too.
//! From there a second WooCommerce store is backed up and restored by the provisioner's own code, as pods: real
//! WordPress installed through its installer, an image uploaded and a post published through its REST API, the
//! backup, both deleted, the restore's steps (the verification excepted), and the database and `wp-content`
//! compared with the backup's.
//!
//! Medusa, whole: PostgreSQL and Redis images with the official images' contract, and the Medusa backend and
//! storefront images laid out as their Dockerfiles lay them out, with the application `make test` built
//! (scripts/node-images.sh). Every probe passes for real, the store is READY, a customer's order goes through the
//! server's Service, the admin lists it and the worker pod processes its event. Then the owner's next hour, as uid
//! 1000 on the image's root-owned application: an image uploaded into the store's volume, a product made with it in
//! the admin and stocked; the server pod is replaced and the image is still served; a customer buys the product in
//! Chromium at the store's own address (`http://<store>.localhost/`, the store's Ingress applied by the tests'
//! stand-in for the ingress controller in the node's network namespace), seeing its image, and pays the region's
//! tax. Then backups, as pods: the owner backs the store up (pg_dump in the store's PostgreSQL image, Debian's restic
//! in an image of its own, to moto's S3 server on the node's address), cancels the first order,
//! restores the backup (the storefront's Service answers the maintenance page meanwhile) and finds the order as it
//! was, the image served and new orders taken; a clone of the backup is a store of its own, with the order, the
//! image at its own address and its own administrator's password. Meanwhile the owner deletes the whole store and
//! brings it back from its backup under its own id: the order, the image, a new password, and orders again.

use std::{net::SocketAddr, process::Command, sync::OnceLock, time::Duration};

use clap::Parser as _;
use k8s_openapi::api::{
    core::v1::{Namespace, Pod, Secret, Service},
    networking::v1::Ingress,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use store_platform_proto::v1::{
    CreateStoreRequest, Engine, GetStoreRequest, Phase, StepState, Store,
    provisioner_service_client::ProvisionerServiceClient,
};

use store_platform_provisioner::{
    backup::{
        JobState,
        restore::{self, Restore},
    },
    engine::{Engine as _, Progress, Steps as _},
    kube_ops::Kube,
    settings::Settings,
    woocommerce::WooCommerce,
};
use store_platform_runtime::record::{self, StoreRecord};
use store_platform_test_support::{
    TestEnv,
    node::{
        self, MARIADB_IMAGE, MEDUSA_IMAGE, MEDUSA_STOREFRONT_IMAGE, MEMORY_HOG_IMAGE,
        POSTGRES_IMAGE, REDIS_IMAGE, RESTIC_IMAGE, WORDPRESS_IMAGE,
    },
};
use tonic::transport::Channel;

mod medusa_support;
mod support;

const TENANT: &str = "real-node-tenant";
/// Its provisioner runs MariaDB from an image the node does not have.
const ABSENT_IMAGE_TENANT: &str = "absent-image-tenant";
/// Its provisioner runs WordPress from the MariaDB image, whose init container then fails on every start.
const CRASHING_TENANT: &str = "crashing-tenant";
/// Its provisioner runs MariaDB from an image that uses memory until the container's limit stops it.
const MEMORY_HOG_TENANT: &str = "memory-hog-tenant";
/// Its provisioner runs Medusa stores.
const MEDUSA_TENANT: &str = "medusa-node-tenant";

/// One provisioner per tenant of this binary, reconciling only that tenant's stores (as split deployments do), with
/// the images the tenant's scenario needs.
fn provisioner(tenant: &'static str) -> SocketAddr {
    static HEALTHY: OnceLock<SocketAddr> = OnceLock::new();
    static ABSENT_IMAGE: OnceLock<SocketAddr> = OnceLock::new();
    static CRASHING: OnceLock<SocketAddr> = OnceLock::new();
    static MEMORY_HOG: OnceLock<SocketAddr> = OnceLock::new();
    static MEDUSA: OnceLock<SocketAddr> = OnceLock::new();
    let cell = match tenant {
        MEDUSA_TENANT => &MEDUSA,
        TENANT => &HEALTHY,
        ABSENT_IMAGE_TENANT => &ABSENT_IMAGE,
        CRASHING_TENANT => &CRASHING,
        MEMORY_HOG_TENANT => &MEMORY_HOG,
        other => panic!("no provisioner for {other}"),
    };
    *cell.get_or_init(|| {
        support::spawn_provisioner(TestEnv::real_node(), provisioner_flags(tenant)).0
    })
}

/// The flags of `tenant`'s provisioner: the images its scenario runs (WordPress's and MariaDB's), its step
/// deadline, and backups for the tenants that back up.
fn provisioner_flags(tenant: &'static str) -> Vec<String> {
    let (wordpress, mariadb, deadline) = match tenant {
        MEDUSA_TENANT => (WORDPRESS_IMAGE, MARIADB_IMAGE, "300s"),
        TENANT => (WORDPRESS_IMAGE, MARIADB_IMAGE, "180s"),
        ABSENT_IMAGE_TENANT => (
            WORDPRESS_IMAGE,
            "store-platform-test/no-such-image:1",
            "45s",
        ),
        CRASHING_TENANT => (MARIADB_IMAGE, MARIADB_IMAGE, "60s"),
        MEMORY_HOG_TENANT => (WORDPRESS_IMAGE, MEMORY_HOG_IMAGE, "45s"),
        other => panic!("no provisioner for {other}"),
    };
    let backups = if tenant == MEDUSA_TENANT || tenant == TENANT {
        backup_flags()
    } else {
        Vec::new()
    };
    backups
        .into_iter()
        .chain([
            format!("--lease-name=provisioner-{tenant}-{}", std::process::id()),
            format!("--reconcile-selector={}={tenant}", record::TENANT_LABEL),
            format!("--wordpress-image={wordpress}"),
            format!("--mariadb-image={mariadb}"),
            format!("--medusa-image={MEDUSA_IMAGE}"),
            format!("--medusa-storefront-image={MEDUSA_STOREFRONT_IMAGE}"),
            // The next builds of the backend the Medusa scenario upgrades to (made on the node by the test).
            format!(
                "--medusa-versions={NEXT_BUILD}={NEXT_IMAGE}+{MEDUSA_STOREFRONT_IMAGE},\
                 {BROKEN_BUILD}={BROKEN_IMAGE}+{MEDUSA_STOREFRONT_IMAGE}"
            ),
            format!("--postgres-image={POSTGRES_IMAGE}"),
            format!("--redis-image={REDIS_IMAGE}"),
            // The images exist only on the node: a pull would be a bug.
            "--image-pull-policy=Never".to_owned(),
            format!("--step-deadline={deadline}"),
            // Medusa's bootstrap loads the whole application three times, on a node that runs the other tests'
            // pods too.
            "--bootstrap-deadline=600s".to_owned(),
        ])
        .collect()
}

/// The settings `tenant`'s provisioner runs with, parsed from the same flags.
fn settings_of(tenant: &'static str) -> Settings {
    let policy = TestEnv::real_node()
        .caller_policy_path()
        .display()
        .to_string();
    let argv = [
        "provisioner".to_owned(),
        format!("--caller-policy={policy}"),
    ]
    .into_iter()
    .chain(provisioner_flags(tenant));
    store_platform_provisioner::Args::parse_from(argv)
        .settings()
        .expect("settings")
}

/// moto's S3 server (from PyPI) with the platform's bucket, in the node's network namespace on the node's address:
/// the node's pods reach it there, and so does this process through the node's link (the provisioner lists
/// repositories with restic). Once per binary.
fn object_store() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let launcher = [
            "nsenter".to_owned(),
            format!("--net=/run/netns/{}", node::running_netns()),
            "--".to_owned(),
        ];
        support::start_object_store(
            &launcher,
            store_platform_test_support::node::NODE_ADDRESS,
            BACKUP_BUCKET,
        )
    })
}

const BACKUP_BUCKET: &str = "real-node-backups";

/// The next build of the backend (a module with a migration, and a route), and a later one whose migration fails:
/// the versions the Medusa scenario's store is upgraded to, and their images, made on the node from the backend's.
const NEXT_BUILD: &str = "2.21.2-r1";
const NEXT_IMAGE: &str = "store-platform-test/medusa:1-r1";
const BROKEN_BUILD: &str = "2.21.2-r2";
const BROKEN_IMAGE: &str = "store-platform-test/medusa:1-r2";

/// Makes `image` on the node's engine: the backend's image with the files of a next build
/// ([`medusa_support::next_build_files`]) in its application, root's and read-only to the pods, as a `COPY` leaves
/// them.
fn derive_backend_image(image: &str, build: &str, migrations: &[(&str, &str)]) {
    let files = tempfile::tempdir().expect("a directory");
    for (path, text) in
        medusa_support::next_build_files(&medusa_support::medusa_app(), build, migrations)
    {
        let path = files.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
        std::fs::write(&path, text).expect("a file");
    }
    let chmod = Command::new("chmod")
        .args(["-R", "u=rwX,go=rX"])
        .arg(files.path())
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let container = docker(&["create", MEDUSA_IMAGE]);
    docker(&[
        "cp",
        &format!("{}/.", files.path().display()),
        &format!("{container}:/opt/medusa/.medusa/server/"),
    ]);
    docker(&["commit", &container, image]);
    docker(&["rm", &container]);
}

/// The platform's backup settings for the tenants that back up: the object store above, its key files, restic's image on
/// the node, egress to the object store only.
fn backup_flags() -> Vec<String> {
    let endpoint = object_store();
    let dir = std::env::temp_dir().join(format!("real-node-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("access"), "real-node-access\n").expect("key file");
    std::fs::write(dir.join("secret"), "real-node-secret-never-shown\n").expect("key file");
    vec![
        format!("--backup-s3-endpoint={endpoint}"),
        format!("--backup-s3-bucket={BACKUP_BUCKET}"),
        format!(
            "--backup-s3-access-key-file={}",
            dir.join("access").display()
        ),
        format!(
            "--backup-s3-secret-key-file={}",
            dir.join("secret").display()
        ),
        format!("--backup-image={RESTIC_IMAGE}"),
        format!(
            "--backup-egress-cidrs={}/32",
            store_platform_test_support::node::NODE_ADDRESS
        ),
    ]
}

async fn api(tenant: &'static str) -> ProvisionerServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", provisioner(tenant)))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the provisioner");
    ProvisionerServiceClient::new(channel)
}

/// Creates a store of `tenant`, reconciled by that tenant's provisioner.
async fn create(tenant: &'static str, prefix: &str) -> (ProvisionerServiceClient<Channel>, String) {
    create_engine(tenant, prefix, Engine::Woocommerce).await
}

async fn create_engine(
    tenant: &'static str,
    prefix: &str,
    engine: Engine,
) -> (ProvisionerServiceClient<Channel>, String) {
    let mut api = api(tenant).await;
    let id = format!("{prefix}-{}", std::process::id());
    api.create_store(
        TestEnv::real_node().as_tenant(tenant, support::create_request_for(&id, engine)),
    )
    .await
    .expect("CreateStore");
    (api, id)
}

async fn get(api: &mut ProvisionerServiceClient<Channel>, tenant: &str, id: &str) -> Store {
    api.get_store(TestEnv::real_node().as_tenant(
        tenant,
        GetStoreRequest {
            store_id: id.to_owned(),
        },
    ))
    .await
    .expect("GetStore")
    .into_inner()
    .store
    .expect("store")
}

fn step_state(store: &Store, step: &str) -> Option<StepState> {
    store
        .steps
        .iter()
        .find(|s| s.name == step)
        .and_then(|s| StepState::try_from(s.state).ok())
}

/// Polls GetStore until `accept` holds (pods on a real node take seconds, not milliseconds).
async fn wait_for(
    api: &mut ProvisionerServiceClient<Channel>,
    tenant: &str,
    id: &str,
    within: Duration,
    what: &str,
    accept: impl Fn(&Store) -> bool,
) -> Store {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let store = get(api, tenant, id).await;
        if accept(&store) {
            return store;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "store {id}: {what} not reached within {within:?}; last seen: {store:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `command` in the node's network namespace, as a pod's neighbour would.
fn in_node(netns: &str, command: &[&str]) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .args(command)
        .output()
        .expect("nsenter")
}

/// curl with `args`, in the node's network namespace, once a connection is no longer refused: a pod is Ready, or a
/// Service's selector changed, a moment before kube-proxy's rules send its traffic there, and until then curl exits 7.
/// Any other outcome is the answer; so is a refusal that lasts a minute.
async fn curl_when_served(netns: &str, args: &[&str]) -> std::process::Output {
    let command: Vec<&str> = std::iter::once("curl")
        .chain(args.iter().copied())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let output = in_node(netns, &command);
        if output.status.code() != Some(7) || tokio::time::Instant::now() > deadline {
            return output;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The `docker` command, against the node's engine.
fn docker_command() -> Command {
    let socket = TestEnv::real_node().dir().join("node/docker.sock");
    let mut command = Command::new("docker");
    command
        .arg("--host")
        .arg(format!("unix://{}", socket.display()));
    command
}

/// `docker` against the node's engine.
fn docker(args: &[&str]) -> String {
    let output = docker_command().args(args).output().expect("docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The running container of `container` in the pod `pod` of `namespace`.
fn container_id(namespace: &str, pod: &str, container: &str) -> String {
    docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=io.kubernetes.pod.namespace={namespace}"),
        "--filter",
        &format!("label=io.kubernetes.pod.name={pod}"),
        "--filter",
        &format!("label=io.kubernetes.container.name={container}"),
    ])
}

/// SQL as MariaDB's root inside the database container (the password from the container's own environment).
fn sql(container: &str, statement: &str) -> String {
    docker(&[
        "exec",
        container,
        "sh",
        "-c",
        &format!(
            "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb -uroot --batch --skip-column-names -e \"{statement}\""
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_runs_mariadb_and_wordpress_in_real_containers_and_stops_honestly_at_the_bootstrap()
{
    let (mut api, id) = create(TENANT, "real").await;
    let namespace = record::namespace_name(&id);

    // MariaDB's exec probe and WordPress's HTTP probe pass for real: both steps succeed.
    let store = wait_for(
        &mut api,
        TENANT,
        &id,
        Duration::from_secs(240),
        "mariadb and wordpress succeeded",
        |s| {
            step_state(s, "mariadb") == Some(StepState::Succeeded)
                && step_state(s, "wordpress") == Some(StepState::Succeeded)
        },
    )
    .await;
    assert_ne!(store.phase, Phase::Failed as i32, "{store:#?}");

    let client = TestEnv::real_node().client().await;
    let netns = node::running_netns();

    // WordPress through its Service's ClusterIP (kube-proxy's rules) talks to MariaDB by its Service's DNS name: the
    // installer page renders only with a working database connection ("Error establishing a database connection"
    // otherwise).
    let wordpress: Service = Api::namespaced(client.clone(), &namespace)
        .get("wordpress")
        .await
        .expect("wordpress Service");
    let cluster_ip = wordpress
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a ClusterIP");
    let url = format!("http://{cluster_ip}/wp-admin/install.php");
    let installer = curl_when_served(
        &netns,
        &[
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--write-out",
            "\n%{http_code}",
            &url,
        ],
    )
    .await;
    let body = String::from_utf8_lossy(&installer.stdout);
    assert!(
        installer.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&installer.stderr)
    );
    assert!(body.ends_with("\n200"), "{url} answered: {body}");
    assert!(
        body.contains(r#"action="install.php?step=2""#),
        "not WordPress's installer form (a database connection error?): {body}"
    );

    // The platform's uids: MariaDB as 999, WordPress as 33, as the official images run them.
    let database = container_id(&namespace, "mariadb-0", "mariadb");
    assert!(!database.is_empty(), "no running mariadb container");
    assert_eq!(docker(&["exec", &database, "id", "-u"]), "999");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let wordpress_pod = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=wordpress"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .expect("a wordpress pod");
    let web = container_id(&namespace, &wordpress_pod, "wordpress");
    assert_eq!(docker(&["exec", &web, "id", "-u"]), "33");
    // The init container's copy is complete and the entrypoint wrote wp-config.php from the environment.
    let listing = docker(&["exec", &web, "ls", "/var/www/html"]);
    for entry in [
        "wp-config.php",
        "wp-includes",
        "wp-admin",
        "index.php",
        ".ht-store-platform-core",
    ] {
        assert!(
            listing.contains(entry) || entry.starts_with('.'),
            "{entry} missing: {listing}"
        );
    }

    // Data survives the database pod's deletion: the volume is a real directory on the node.
    sql(
        &database,
        "CREATE TABLE IF NOT EXISTS wordpress.survives (note VARCHAR(32)); INSERT INTO wordpress.survives VALUES ('kept');",
    );
    let before = pods.get("mariadb-0").await.expect("mariadb-0").metadata.uid;
    pods.delete("mariadb-0", &DeleteParams::default())
        .await
        .expect("delete mariadb-0");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let database = loop {
        let pod = pods.get_opt("mariadb-0").await.expect("get mariadb-0");
        let ready = pod.as_ref().is_some_and(|p| {
            p.metadata.uid != before
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            break container_id(&namespace, "mariadb-0", "mariadb");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mariadb-0 not ready again: {pod:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        sql(&database, "SELECT note FROM wordpress.survives"),
        "kept"
    );

    // No reachable registry has WooCommerce or WP-CLI: the bootstrap Job fails, and the store says why.
    let store = stopped_at_the_bootstrap(&mut api, &id, Duration::from_secs(300)).await;
    assert!(
        store.failure_reason.contains("bootstrap"),
        "the reason names the step: {}",
        store.failure_reason
    );
    assert!(
        store.failure_reason.contains("wp: command not found"),
        "the reason is WP-CLI's absence from the test image, nothing else: {}",
        store.failure_reason
    );
}

/// Waits until WooCommerce store `id` of the healthy tenant is FAILED at its bootstrap (WP-CLI is in no image here).
async fn stopped_at_the_bootstrap(
    api: &mut ProvisionerServiceClient<Channel>,
    id: &str,
    within: Duration,
) -> Store {
    let store = wait_for(api, TENANT, id, within, "FAILED at the bootstrap", |s| {
        s.phase == Phase::Failed as i32
    })
    .await;
    assert_eq!(
        step_state(&store, "bootstrap"),
        Some(StepState::Failed),
        "{store:#?}"
    );
    store
}

/// Creates a store of `tenant`, waits until it is FAILED with `step` failed, and returns the reason.
async fn failure_of(tenant: &'static str, prefix: &str, step: &str, within: Duration) -> String {
    let (mut api, id) = create(tenant, prefix).await;
    let store = wait_for(&mut api, tenant, &id, within, "FAILED", |s| {
        s.phase == Phase::Failed as i32
    })
    .await;
    assert_eq!(
        step_state(&store, step),
        Some(StepState::Failed),
        "{store:#?}"
    );
    // Its pods would go on failing (a memory hog killed and restarted) beside the other tests on the node.
    api.delete_store(TestEnv::real_node().as_tenant(
        tenant,
        store_platform_proto::v1::DeleteStoreRequest { store_id: id },
    ))
    .await
    .expect("delete the failed store");
    store.failure_reason
}

/// A store whose MariaDB image is on no node: FAILED at the mariadb step's deadline, with the kubelet's own words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_the_node_does_not_have_fails_the_store_naming_the_image() {
    let reason = failure_of(
        ABSENT_IMAGE_TENANT,
        "absent",
        "mariadb",
        Duration::from_secs(180),
    )
    .await;
    assert!(reason.contains("mariadb-0"), "{reason}");
    assert!(reason.contains("ErrImageNeverPull"), "{reason}");
    assert!(
        reason.contains("store-platform-test/no-such-image:1"),
        "{reason}"
    );
}

/// A store whose WordPress pod cannot start (its init container fails on every start, as a broken image would): the
/// reason names the init container and how it last stopped, not "PodInitializing". MariaDB, before it, is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_init_container_fails_the_store_naming_it() {
    let reason = failure_of(
        CRASHING_TENANT,
        "crashing",
        "wordpress",
        Duration::from_secs(240),
    )
    .await;
    assert!(reason.contains("init container install-core"), "{reason}");
    assert!(
        reason.contains("CrashLoopBackOff") || reason.contains("Error"),
        "{reason}"
    );
}

/// A database container that exceeds its memory limit is killed by the kernel, for real: the reason says
/// `OOMKilled`, which tells a person to raise the limit or find the leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_fails_the_store_saying_oom_killed() {
    let reason = failure_of(
        MEMORY_HOG_TENANT,
        "hog",
        "mariadb",
        Duration::from_secs(180),
    )
    .await;
    assert!(reason.contains("mariadb-0"), "{reason}");
    assert!(reason.contains("OOMKilled"), "{reason}");
}

/// What `call-provisioner` printed in a pod that ran on the node, once the pod has ended.
async fn pod_output(namespace: &str, pod: serde_json::Value, out: &std::path::Path) -> String {
    let pods: Api<Pod> = Api::namespaced(TestEnv::real_node().client().await, namespace);
    let pod: Pod = serde_json::from_value(pod).expect("a Pod");
    let name = pod.metadata.name.clone().expect("name");
    pods.create(&kube::api::PostParams::default(), &pod)
        .await
        .expect("create the calling pod");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let phase = pods
            .get(&name)
            .await
            .expect("get")
            .status
            .and_then(|s| s.phase)
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the calling pod is still {phase:?} after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    std::fs::read_to_string(out.join("calls")).expect("the pod's answers")
}

#[tokio::test]
async fn a_pod_in_another_namespace_acts_only_as_its_own_service_account() {
    let env = TestEnv::real_node();
    let client = env.client().await;
    let pid = std::process::id();
    let (victim, own) = (format!("victim-{pid}"), format!("intruder-{pid}"));
    let namespace = format!("intruder-{pid}");
    // The pod's ServiceAccount may act for a tenant of its own, and nothing else.
    let scratch = tempfile::tempdir().expect("scratch");
    env.ensure_namespace("store-platform").await;
    let policy = scratch.path().join("callers.json");
    let tests_caller = serde_json::json!({
        "serviceAccount": format!(
            "{}/{}",
            store_platform_test_support::caller::NAMESPACE,
            store_platform_test_support::caller::NAME
        ),
        "anyTenant": true,
        "allTenantsScope": true,
    });
    std::fs::write(
        &policy,
        serde_json::json!({"callers": [
            tests_caller,
            {"serviceAccount": format!("{namespace}/app"), "tenants": [own.clone()]},
        ]})
        .to_string(),
    )
    .expect("policy");
    // The provisioner in the node's network namespace, where pods reach it; it reconciles none of these stores.
    let port = store_platform_test_support::process::free_port();
    let address = format!("{}:{port}", store_platform_test_support::node::NODE_ADDRESS);
    let mut provisioner = store_platform_test_support::process::ServiceProcess::start_in_netns(
        &node::running_netns(),
        "provisioner",
        &[
            ("KUBECONFIG", env.kubeconfig_path().display().to_string()),
            ("GRPC_ADDR", address.clone()),
            (
                "METRICS_ADDR",
                format!("{}:0", store_platform_test_support::node::NODE_ADDRESS),
            ),
            ("CALLER_POLICY", policy.display().to_string()),
            ("LEASE_NAME", format!("callers-pod-{pid}")),
            (
                "RECONCILE_SELECTOR",
                "store-platform.io/tenant=nobody".to_owned(),
            ),
        ],
        scratch.path(),
    );
    // From the host too, through the veth.
    let mut api = ProvisionerServiceClient::new(provisioner.channel_at(&address).await);
    let store_id = format!("victim-{pid}");
    api.create_store(env.as_tenant(
        &victim,
        CreateStoreRequest {
            store_id: store_id.clone(),
            display_name: "Victim".into(),
            engine: Engine::Woocommerce as i32,
            admin_email: "owner@example.com".into(),
            source: None,
        },
    ))
    .await
    .expect("the victim's store");

    store_platform_test_support::caller::ensure_service_account(&client, &namespace, "app")
        .await
        .expect("the intruder's namespace and ServiceAccount");
    // Kubernetes 1.20 admits a pod of a ServiceAccount only once its API token Secret exists.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &namespace);
    tokio::time::timeout(
        Duration::from_secs(60),
        kube::runtime::wait::await_condition(accounts, "app", |account: Option<&_>| {
            account.is_some_and(|a: &k8s_openapi::api::core::v1::ServiceAccount| {
                a.secrets.as_ref().is_some_and(|s| !s.is_empty())
            })
        }),
    )
    .await
    .expect("the ServiceAccount's token in time")
    .expect("watch");
    let out = scratch.path().join("out");
    std::fs::create_dir(&out).expect("out");
    let probe = store_platform_test_support::process::bin_dir()
        .join("call-provisioner")
        .canonicalize()
        .expect("call-provisioner is built (cargo build --bins)");
    let calls = [
        // The pod's own token for the platform (projected by the kubelet): its own tenant only.
        format!("list {own} /platform/token"),
        format!("list {victim} /platform/token"),
        format!("list {own} /platform/token all-tenants"),
        format!("credentials {victim} /platform/token all-tenants {store_id}"),
        // Its token for the Kubernetes API: not for the platform's audience.
        format!("list {victim} /var/run/secrets/kubernetes.io/serviceaccount/token"),
        // No token at all.
        format!("credentials {victim} - {store_id}"),
    ];
    let script = calls
        .iter()
        .map(|call| format!("/probe/call-provisioner {address} {call} >> /out/calls"))
        .collect::<Vec<_>>()
        .join("; ");
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "caller", "namespace": namespace},
        "spec": {
            "serviceAccountName": "app",
            "restartPolicy": "Never",
            "containers": [{
                "name": "call",
                "image": MARIADB_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "volumeMounts": [
                    {"name": "probe", "mountPath": "/probe/call-provisioner", "readOnly": true},
                    {"name": "out", "mountPath": "/out"},
                    {"name": "platform", "mountPath": "/platform", "readOnly": true},
                ],
            }],
            "volumes": [
                {"name": "probe", "hostPath": {"path": probe.display().to_string(), "type": "File"}},
                {"name": "out", "hostPath": {"path": out.display().to_string(), "type": "Directory"}},
                {"name": "platform", "projected": {"sources": [{"serviceAccountToken": {
                    "audience": store_platform_proto::TOKEN_AUDIENCE,
                    "expirationSeconds": 600,
                    "path": "token",
                }}]}},
            ],
        },
    });
    let answers = pod_output(&namespace, pod, &out).await;
    let lines: Vec<&str> = answers.lines().collect();
    assert_eq!(
        lines.len(),
        calls.len(),
        "{answers}\n{}",
        provisioner.logs()
    );
    let expected = [
        "OK 0 stores",
        "PermissionDenied x-store-platform-tenant: ServiceAccount",
        "PermissionDenied x-store-platform-scope: ServiceAccount",
        "PermissionDenied x-store-platform-tenant: ServiceAccount",
        "Unauthenticated authorization: the token is not accepted",
        "Unauthenticated authorization: send `Bearer <token>`",
    ];
    for ((call, line), start) in calls.iter().zip(&lines).zip(expected) {
        assert!(line.starts_with(start), "{call}: {line}");
    }
    // The victim's store is untouched.
    let found = api
        .get_store(env.as_tenant(
            &victim,
            GetStoreRequest {
                store_id: store_id.clone(),
            },
        ))
        .await
        .expect("the victim's store is still there");
    assert_eq!(found.into_inner().store.expect("store").id, store_id);
    api.delete_store(env.as_tenant(
        &victim,
        store_platform_proto::v1::DeleteStoreRequest {
            store_id: store_id.clone(),
        },
    ))
    .await
    .expect("delete");
    drop(provisioner);
    env.delete_namespace(&namespace).await;
}

/// The running container named `container` of any pod in `namespace`.
fn container_named(namespace: &str, container: &str) -> String {
    docker(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label=io.kubernetes.pod.namespace={namespace}"),
        "--filter",
        &format!("label=io.kubernetes.container.name={container}"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_medusa_store_runs_as_real_pods_and_takes_an_order() {
    let created = std::time::Instant::now();
    let (mut api, id) = create_engine(MEDUSA_TENANT, "medusa", Engine::Medusa).await;
    let namespace = record::namespace_name(&id);
    // Every probe for real: PostgreSQL's pg_isready, Redis's PING, the bootstrap Job, the server's readiness route
    // and the worker's startup command, the storefront's /healthz.
    let store = wait_for(
        &mut api,
        MEDUSA_TENANT,
        &id,
        Duration::from_secs(900),
        "READY",
        |s| s.phase == Phase::Ready as i32 || s.phase == Phase::Failed as i32,
    )
    .await;
    assert_eq!(store.phase, Phase::Ready as i32, "{store:#?}");
    // A measurement for docs/benchmarks.md (`-- --nocapture` shows it), not a goal.
    println!(
        "medusa store {id}: CreateStore → READY on the real node in {:.1} s",
        created.elapsed().as_secs_f64()
    );

    let client = TestEnv::real_node().client().await;
    let config: k8s_openapi::api::core::v1::ConfigMap = Api::namespaced(client.clone(), &namespace)
        .get("storefront-config")
        .await
        .expect("the storefront's ConfigMap");
    let key = config.data.expect("data")["publishable-key"].clone();
    let cluster_ip = |service: Service| {
        service
            .spec
            .and_then(|s| s.cluster_ip)
            .expect("a ClusterIP")
    };
    let server_ip = cluster_ip(
        Api::namespaced(client.clone(), &namespace)
            .get("medusa-server")
            .await
            .expect("the server's Service"),
    );
    let storefront_ip = cluster_ip(
        Api::namespaced(client.clone(), &namespace)
            .get("storefront")
            .await
            .expect("the storefront's Service"),
    );
    let netns = format!("--net=/run/netns/{}", node::running_netns());
    let via = ["nsenter", netns.as_str(), "--"];

    // A customer's order through the server's Service (kube-proxy), the server reaching PostgreSQL and Redis by
    // their Services' DNS names.
    let settings = store_platform_provisioner::settings::Settings::local();
    let base = format!("http://{server_ip}");
    let order = medusa_support::place_order_via(&via, &base, &key, &settings, "node@example.com");
    let credentials = api
        .get_store_credentials(TestEnv::real_node().as_tenant(
            MEDUSA_TENANT,
            store_platform_proto::v1::GetStoreCredentialsRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("credentials")
        .into_inner();
    let token =
        medusa_support::admin_token_via(&via, &base, &credentials.username, &credentials.password);
    let orders = medusa_support::admin_orders_via(&via, &base, &token);
    assert!(
        medusa_support::lists_order(&orders, &order),
        "the admin does not list {order}: {orders}"
    );
    // The storefront pod serves the store's key.
    let config = medusa_support::http_via(
        &via,
        "GET",
        &format!("http://{storefront_ip}/config.json"),
        &[],
        None,
    )
    .ok("the storefront's configuration");
    assert_eq!(config["publishableKey"], key.as_str());
    // The owner's next hour: an image uploaded into the store's volume by the server pod (uid 1000 on the image's
    // root-owned application), a product made with it and stocked.
    let image = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/medusa/product-image.png");
    let image_bytes = std::fs::read(&image).expect("the image");
    let owners = medusa_support::owner_adds_a_product_via(&via, &base, &token, &settings, &image);
    let public = settings.origin(&id);
    let static_path = owners
        .image_url
        .strip_prefix(&public)
        .filter(|path| path.starts_with("/static/"))
        .unwrap_or_else(|| panic!("{} is not at {public}/static/", owners.image_url))
        .to_owned();
    assert_eq!(
        medusa_support::bytes_via(&via, &format!("{base}{static_path}"), &[]),
        image_bytes
    );

    // The server pod is replaced: the image outlives it, on the store's volume.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let server_pods = ListParams::default().labels("app.kubernetes.io/name=medusa-server");
    let before: Vec<String> = pods
        .list(&server_pods)
        .await
        .expect("the server's pods")
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    pods.delete_collection(&DeleteParams::default(), &server_pods)
        .await
        .expect("delete the server's pod");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let ready = pods
            .list(&server_pods)
            .await
            .expect("the server's pods")
            .items
            .iter()
            .any(|p| {
                !before.contains(p.metadata.uid.as_ref().expect("uid"))
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
        if ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new server pod became ready"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // A pod's Ready reaches the Service's endpoints and then kube-proxy's rules a moment later; until then the
    // Service refuses connections (curl's exit 7), which is the only failure waited out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while medusa_support::refused_via(&via, &format!("{base}/health")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Service refused connections a minute after its new pod was ready"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        medusa_support::bytes_via(&via, &format!("{base}{static_path}"), &[]),
        image_bytes,
        "the image did not survive the server pod"
    );

    // A customer at the store's own address, in Chromium: the store's Ingress, applied by the tests' stand-in for
    // the ingress controller on port 80 in the node's network namespace, in front of the Services.
    let ingress: Ingress = Api::namespaced(client.clone(), &namespace)
        .get("storefront")
        .await
        .expect("the store's Ingress");
    let routes = medusa_support::ingress_routes(&ingress, |service, port| match service {
        "medusa-server" => format!("{server_ip}:{port}"),
        "storefront" => format!("{storefront_ip}:{port}"),
        other => panic!("the Ingress routes to {other}"),
    });
    let scratch = tempfile::tempdir().expect("a directory");
    let ingress_daemon =
        medusa_support::start_ingress(&via, ([127, 0, 0, 1], 80).into(), &routes, scratch.path());
    let shop_order = medusa_support::buy_in_chromium(
        &via,
        &format!("{public}/"),
        (&owners.title, &format!("{public}/static/")),
        "shopper@example.com",
        &scratch.path().join("screenshots"),
        || format!("ingress:\n{}", ingress_daemon.log()),
    );
    let placed = medusa_support::http_via(
        &via,
        "GET",
        &format!("{base}/admin/orders/{shop_order}?fields=id,total,tax_total,shipping_address.country_code"),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .ok("the storefront's order");
    medusa_support::assert_taxed(&placed["order"], &settings);

    // The worker pod processed the order's event.
    let worker = container_named(&namespace, "medusa-worker");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let logs = docker_command()
            .args(["logs", &worker])
            .output()
            .expect("docker logs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        if text.contains(&format!("order placed: {order}")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker pod never processed the order:\n{text}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Backups, as pods: the owner backs the store up (pg_dump in the store's PostgreSQL image, restic in Debian's,
    // to the object store on the host's end of the node's link, through the store's egress policy).
    let bearer = format!("Bearer {token}");
    let snapshot = backed_up(&mut api, &id).await;
    // The owner cancels the first order in the admin, then restores the backup: the maintenance page meanwhile, then
    // the order as it was, the image, and orders again.
    medusa_support::http_via(
        &via,
        "POST",
        &format!("{base}/admin/orders/{order}/cancel"),
        &[("authorization", &bearer)],
        Some(&serde_json::json!({})),
    )
    .ok("cancel the order");
    assert_eq!(order_status(&via, &base, &token, &order), "canceled");
    api.restore_store(TestEnv::real_node().as_tenant(
        MEDUSA_TENANT,
        store_platform_proto::v1::RestoreStoreRequest {
            store_id: id.clone(),
            backup_id: snapshot.clone(),
        },
    ))
    .await
    .expect("restore");
    let maintenance = in_store_while_restoring(&mut api, &id, || {
        let page = in_node(
            &node::running_netns(),
            &[
                "curl",
                "-sS",
                "-i",
                "--max-time",
                "5",
                &format!("http://{storefront_ip}/"),
            ],
        );
        String::from_utf8_lossy(&page.stdout).into_owned()
    })
    .await;
    assert!(
        maintenance.starts_with("HTTP/1.1 503") && maintenance.contains("is being restored"),
        "the storefront during the restore:\n{maintenance}"
    );
    let restored = get(&mut api, MEDUSA_TENANT, &id).await;
    assert_eq!(restored.phase, Phase::Ready as i32, "{restored:#?}");
    let token =
        medusa_support::admin_token_via(&via, &base, &credentials.username, &credentials.password);
    assert_ne!(
        order_status(&via, &base, &token, &order),
        "canceled",
        "the order is as it was in the backup"
    );
    assert_eq!(
        medusa_support::bytes_via(&via, &format!("{base}{static_path}"), &[]),
        image_bytes,
        "the image after the restore"
    );
    medusa_support::place_order_via(&via, &base, &key, &settings, "after-restore@example.com");

    // Day two: the store moves to the next build of its backend, whose migration makes a table of its own module and
    // whose route shows it. The upgrade backs the store up, migrates in the new image, rolls the server and worker,
    // and checks the store again; the orders are there and a new one goes through.
    derive_backend_image(
        NEXT_IMAGE,
        NEXT_BUILD,
        &[medusa_support::GREETING_MIGRATION],
    );
    derive_backend_image(
        BROKEN_IMAGE,
        BROKEN_BUILD,
        &[
            medusa_support::GREETING_MIGRATION,
            medusa_support::BROKEN_MIGRATION,
        ],
    );
    let upgraded = upgrade(&mut api, &id, NEXT_BUILD).await;
    let operation = upgraded.operation.clone().expect("the upgrade");
    assert_eq!(
        operation.state,
        store_platform_proto::v1::OperationState::Succeeded as i32,
        "{upgraded:#?}"
    );
    assert_eq!(upgraded.version, NEXT_BUILD);
    let server_image = |deployment: k8s_openapi::api::apps::v1::Deployment| {
        deployment
            .spec
            .and_then(|s| s.template.spec)
            .expect("a pod")
            .containers[0]
            .image
            .clone()
            .expect("an image")
    };
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &namespace);
    assert_eq!(
        server_image(deployments.get("medusa-server").await.expect("the server")),
        NEXT_IMAGE
    );
    let greetings = |expected: &str| {
        let reply = medusa_support::http_via(
            &via,
            "GET",
            &format!("{base}/store/greetings"),
            &[("x-publishable-api-key", &key)],
            None,
        )
        .ok("the new build's route");
        assert_eq!(reply["build"], expected, "{reply}");
        assert_eq!(reply["greetings"], 0, "the module's table answers: {reply}");
    };
    wait_until_served(&via, &base).await;
    greetings(NEXT_BUILD);
    let token =
        medusa_support::admin_token_via(&via, &base, &credentials.username, &credentials.password);
    let orders = medusa_support::admin_orders_via(&via, &base, &token);
    assert!(medusa_support::lists_order(&orders, &order), "{orders}");
    let upgraded_order =
        medusa_support::place_order_via(&via, &base, &key, &settings, "after-upgrade@example.com");

    // The build after it fails its migration in PostgreSQL: the upgrade rolls itself back, to the backup it took and
    // the images before, and the store is READY on the version it ran, with its orders, taking orders.
    let rolled = upgrade(&mut api, &id, BROKEN_BUILD).await;
    let operation = rolled.operation.clone().expect("the upgrade");
    assert_eq!(
        operation.state,
        store_platform_proto::v1::OperationState::RolledBack as i32,
        "{rolled:#?}"
    );
    assert!(
        operation.message.contains("no_such_type"),
        "the reason is PostgreSQL's: {}",
        operation.message
    );
    assert_eq!(rolled.phase, Phase::Ready as i32);
    assert_eq!(rolled.version, NEXT_BUILD);
    assert_eq!(
        server_image(deployments.get("medusa-server").await.expect("the server")),
        NEXT_IMAGE
    );
    wait_until_served(&via, &base).await;
    greetings(NEXT_BUILD);
    let token =
        medusa_support::admin_token_via(&via, &base, &credentials.username, &credentials.password);
    let orders = medusa_support::admin_orders_via(&via, &base, &token);
    assert!(
        medusa_support::lists_order(&orders, &order)
            && medusa_support::lists_order(&orders, &upgraded_order),
        "{orders}"
    );
    medusa_support::place_order_via(&via, &base, &key, &settings, "after-rollback@example.com");

    // The owner pauses the store: its pods stop, its address says it is paused; resumed, it has its orders and takes
    // another.
    let paused = pause_or_resume(&mut api, &id, true).await;
    assert_eq!(paused.phase, Phase::Suspended as i32, "{paused:#?}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let running: Vec<String> = pods
            .list(&Default::default())
            .await
            .expect("list the store's pods")
            .items
            .into_iter()
            .filter(|pod| {
                pod.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|phase| matches!(phase, "Running" | "Pending"))
            })
            .map(|pod| pod.metadata.name.unwrap_or_default())
            .collect();
        if running.iter().all(|name| name.starts_with("maintenance-")) && !running.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the paused store still runs {running:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let page = curl_when_served(
        &node::running_netns(),
        &[
            "-sS",
            "--max-time",
            "30",
            "-w",
            "\n%{http_code}",
            &format!("{public}/store/products"),
        ],
    )
    .await;
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(
        page.ends_with("\n503") && page.contains("is paused"),
        "the store's address, paused: {page}"
    );
    let resumed = pause_or_resume(&mut api, &id, false).await;
    assert_eq!(resumed.phase, Phase::Ready as i32, "{resumed:#?}");
    wait_until_served(&via, &base).await;
    let token =
        medusa_support::admin_token_via(&via, &base, &credentials.username, &credentials.password);
    let orders = medusa_support::admin_orders_via(&via, &base, &token);
    assert!(
        medusa_support::lists_order(&orders, &order)
            && medusa_support::lists_order(&orders, &upgraded_order),
        "{orders}"
    );
    medusa_support::place_order_via(&via, &base, &key, &settings, "after-resume@example.com");

    // A clone of the backup: a store of its own, with the order and the image at its own address, and its own
    // administrator's password.
    let copy = format!("{id}-copy");
    api.create_store(TestEnv::real_node().as_tenant(
        MEDUSA_TENANT,
        support::clone_request_for(&copy, Engine::Medusa, (&id, &snapshot)),
    ))
    .await
    .expect("clone");

    // Meanwhile the owner deletes the whole store. Its backups stay: the store is among the deleted ones, and is
    // brought back under its own id from the backup (a clone of it, as the dashboard's "Bring back" makes).
    let deleted = api
        .delete_store(TestEnv::real_node().as_tenant(
            MEDUSA_TENANT,
            store_platform_proto::v1::DeleteStoreRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("delete the store")
        .into_inner();
    assert!(deleted.backups_kept_until.is_some(), "{deleted:?}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while namespaces
        .get_opt(&namespace)
        .await
        .expect("get the namespace")
        .is_some()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace} not removed"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let gone = api
        .list_deleted_stores(TestEnv::real_node().as_tenant(
            MEDUSA_TENANT,
            store_platform_proto::v1::ListDeletedStoresRequest {},
        ))
        .await
        .expect("ListDeletedStores")
        .into_inner()
        .stores;
    assert!(gone.iter().any(|s| s.store_id == id), "{gone:?}");
    api.create_store(TestEnv::real_node().as_tenant(
        MEDUSA_TENANT,
        support::clone_request_for(&id, Engine::Medusa, (&id, &snapshot)),
    ))
    .await
    .expect("bring the store back");

    let (copy_base, copy_token) =
        restored_store(&mut api, &copy, &credentials.password, &via).await;
    assert_ne!(
        order_status(&via, &copy_base, &copy_token, &order),
        "canceled"
    );
    let product = medusa_support::http_via(
        &via,
        "GET",
        &format!("{copy_base}/admin/products/{}?fields=thumbnail", owners.id),
        &[("authorization", &format!("Bearer {copy_token}"))],
        None,
    )
    .ok("the owner's product in the clone");
    let thumbnail = product["product"]["thumbnail"]
        .as_str()
        .expect("a thumbnail");
    assert!(
        thumbnail.starts_with(&format!("{}/static/", settings.origin(&copy))),
        "the image's address is the clone's: {thumbnail}"
    );
    assert_eq!(
        medusa_support::bytes_via(&via, &format!("{copy_base}{static_path}"), &[]),
        image_bytes,
        "the clone serves the image"
    );

    // The store brought back: at its own address, with the order, the image and the owner's product, a new
    // administrator's password, and orders again.
    let (base, token) = restored_store(&mut api, &id, &credentials.password, &via).await;
    assert_ne!(order_status(&via, &base, &token, &order), "canceled");
    assert_eq!(
        medusa_support::bytes_via(&via, &format!("{base}{static_path}"), &[]),
        image_bytes,
        "the store brought back serves the image"
    );
    let key = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &namespace)
        .get("storefront-config")
        .await
        .expect("the storefront's ConfigMap")
        .data
        .expect("data")["publishable-key"]
        .clone();
    medusa_support::place_order_via(&via, &base, &key, &settings, "brought-back@example.com");

    for store in [&id, &copy] {
        api.delete_store(TestEnv::real_node().as_tenant(
            MEDUSA_TENANT,
            store_platform_proto::v1::DeleteStoreRequest {
                store_id: store.clone(),
            },
        ))
        .await
        .expect("delete");
    }
}

/// Upgrades store `id` of the Medusa scenario to `version` and waits until the upgrade has ended; the store then.
async fn upgrade(api: &mut ProvisionerServiceClient<Channel>, id: &str, version: &str) -> Store {
    let started = std::time::Instant::now();
    api.upgrade_store(TestEnv::real_node().as_tenant(
        MEDUSA_TENANT,
        store_platform_proto::v1::UpgradeStoreRequest {
            store_id: id.to_owned(),
            version: version.to_owned(),
        },
    ))
    .await
    .expect("upgrade");
    let what = format!("UpgradeStore to {version}");
    operation_ended(api, id, (&what, Duration::from_secs(1200)), started).await
}

/// Pauses (`suspend`) or resumes store `id` of the Medusa scenario and waits until that has ended; the store then.
async fn pause_or_resume(
    api: &mut ProvisionerServiceClient<Channel>,
    id: &str,
    suspend: bool,
) -> Store {
    let started = std::time::Instant::now();
    let what = if suspend {
        api.suspend_store(TestEnv::real_node().as_tenant(
            MEDUSA_TENANT,
            store_platform_proto::v1::SuspendStoreRequest {
                store_id: id.to_owned(),
            },
        ))
        .await
        .expect("pause");
        "SuspendStore"
    } else {
        api.resume_store(TestEnv::real_node().as_tenant(
            MEDUSA_TENANT,
            store_platform_proto::v1::ResumeStoreRequest {
                store_id: id.to_owned(),
            },
        ))
        .await
        .expect("resume");
        "ResumeStore"
    };
    let store = operation_ended(api, id, (what, Duration::from_secs(600)), started).await;
    let operation = store.operation.as_ref().expect("the operation");
    assert_eq!(
        operation.state,
        store_platform_proto::v1::OperationState::Succeeded as i32,
        "{store:#?}"
    );
    store
}

/// Waits until the operation `what` on store `id` of the Medusa scenario (asked for at `started`) has ended and the
/// store is past its phase, and prints how long it took; the store then.
async fn operation_ended(
    api: &mut ProvisionerServiceClient<Channel>,
    id: &str,
    (what, within): (&str, Duration),
    started: std::time::Instant,
) -> Store {
    let store = wait_for(
        api,
        MEDUSA_TENANT,
        id,
        within,
        &format!("the end of {what}"),
        |s| {
            s.operation.as_ref().is_some_and(|op| {
                op.state != store_platform_proto::v1::OperationState::Running as i32
            }) && s.phase != Phase::Upgrading as i32
                && s.phase != Phase::Resuming as i32
        },
    )
    .await;
    // A measurement (`-- --nocapture` shows it), not a goal.
    println!(
        "medusa store {id}: {what} → its end in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store
}

/// Waits while the server's Service refuses connections: a new pod's readiness reaches kube-proxy a moment after.
async fn wait_until_served(via: &[&str], base: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while medusa_support::refused_via(via, &format!("{base}/health")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Service refused connections a minute after its pods were ready"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until store `id`, made from a backup, is READY; checks that its administrator's password is its own (not
/// `before`, the backed-up store's) and signs in with it. Returns the address of its server's Service and the admin
/// token.
async fn restored_store(
    api: &mut ProvisionerServiceClient<Channel>,
    id: &str,
    before: &str,
    via: &[&str],
) -> (String, String) {
    let store = wait_for(
        api,
        MEDUSA_TENANT,
        id,
        Duration::from_secs(900),
        "READY",
        |s| s.phase == Phase::Ready as i32 || s.phase == Phase::Failed as i32,
    )
    .await;
    assert_eq!(store.phase, Phase::Ready as i32, "{store:#?}");
    let server: Service = Api::namespaced(
        TestEnv::real_node().client().await,
        &record::namespace_name(id),
    )
    .get("medusa-server")
    .await
    .expect("the server's Service");
    let base = format!(
        "http://{}",
        server.spec.and_then(|s| s.cluster_ip).expect("a ClusterIP")
    );
    let credentials = api
        .get_store_credentials(TestEnv::real_node().as_tenant(
            MEDUSA_TENANT,
            store_platform_proto::v1::GetStoreCredentialsRequest {
                store_id: id.to_owned(),
            },
        ))
        .await
        .expect("the store's credentials")
        .into_inner();
    assert_ne!(
        credentials.password, before,
        "{id} has a password of its own"
    );
    let token =
        medusa_support::admin_token_via(via, &base, &credentials.username, &credentials.password);
    (base, token)
}

/// Starts a backup of store `id` and waits until it is in the repository; returns its id.
async fn backed_up(api: &mut ProvisionerServiceClient<Channel>, id: &str) -> String {
    api.backup_store(TestEnv::real_node().as_tenant(
        MEDUSA_TENANT,
        store_platform_proto::v1::BackupStoreRequest {
            store_id: id.to_owned(),
        },
    ))
    .await
    .expect("BackupStore");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let backups = api
            .list_backups(TestEnv::real_node().as_tenant(
                MEDUSA_TENANT,
                store_platform_proto::v1::ListBackupsRequest {
                    store_id: id.to_owned(),
                },
            ))
            .await
            .expect("ListBackups")
            .into_inner()
            .backups;
        use store_platform_proto::v1::BackupState;
        if let Some(failed) = backups
            .iter()
            .find(|b| b.state == BackupState::Failed as i32)
        {
            panic!("the backup failed: {}", failed.message);
        }
        if let Some(done) = backups
            .iter()
            .find(|b| b.state == BackupState::Succeeded as i32)
        {
            return done.id.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no backup after 10 minutes: {backups:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The status of order `order`, as the admin API says.
fn order_status(via: &[&str], base: &str, token: &str, order: &str) -> String {
    medusa_support::http_via(
        via,
        "GET",
        &format!("{base}/admin/orders/{order}?fields=id,status"),
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .ok("the order")["order"]["status"]
        .as_str()
        .expect("a status")
        .to_owned()
}

/// Waits for store `id`'s restore to end (READY or FAILED), asking `look` once while its data is being replaced;
/// returns what `look` saw.
async fn in_store_while_restoring(
    api: &mut ProvisionerServiceClient<Channel>,
    id: &str,
    look: impl Fn() -> String,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1200);
    let mut seen = String::new();
    loop {
        let store = get(api, MEDUSA_TENANT, id).await;
        let replacing = store.operation.as_ref().is_some_and(|op| {
            op.steps.iter().any(|s| {
                s.name == "restore-data"
                    && (s.state == StepState::Running as i32
                        || s.state == StepState::Pending as i32)
            }) && op
                .steps
                .iter()
                .any(|s| s.name == "stop-writers" && s.state == StepState::Succeeded as i32)
        });
        if replacing && seen.is_empty() {
            seen = look();
        }
        if store.phase != Phase::Restoring as i32 {
            assert!(
                store.operation.as_ref().is_some_and(
                    |op| op.state == store_platform_proto::v1::OperationState::Succeeded as i32
                ),
                "the restore did not succeed: {store:#?}"
            );
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restore did not end: {store:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A WordPress store's backup and restore, as the node's pods run them: the store stops at its bootstrap here (no
/// registry has WP-CLI or WooCommerce), so this test takes the platform's part from there with the provisioner's own
/// code on the store's real objects — BackupStore's backup, then the restore operation's steps but the last (its
/// verification is the bootstrap). Real WordPress installs itself through its installer, and its owner uploads an
/// image (WordPress writes it and its sizes into `wp-content`, and its serialized metadata into the database) and
/// publishes a post with it, through WordPress's REST API. The backup is taken (mariadb-dump in the store's MariaDB
/// image, restic in its own, to moto's S3 server); the owner deletes the post and the image; the restore brings
/// back the database byte for byte as the backup holds it and `wp-content` file for file (owner, mode, content),
/// and WordPress serves the post and the image again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wordpress_store_is_backed_up_and_restored_by_real_pods() {
    let (mut api, id) = create(TENANT, "wpbackup").await;
    let namespace = record::namespace_name(&id);
    stopped_at_the_bootstrap(&mut api, &id, Duration::from_secs(600)).await;

    let client = TestEnv::real_node().client().await;
    let kube = Kube::new(client.clone(), namespace.clone());
    let engine = WooCommerce::new(std::sync::Arc::new(settings_of(TENANT)));
    let record = StoreRecord::from_namespace(
        &Api::<Namespace>::all(client.clone())
            .get(&namespace)
            .await
            .expect("the store's namespace"),
    )
    .expect("the store's record");
    let source = engine.backup_source(&record);
    let wordpress: Service = Api::namespaced(client.clone(), &namespace)
        .get("wordpress")
        .await
        .expect("wordpress Service");
    let scratch = tempfile::tempdir().expect("a directory");
    let site = Site {
        netns: node::running_netns(),
        host: engine.settings().host(&id),
        address: wordpress
            .spec
            .and_then(|s| s.cluster_ip)
            .expect("a ClusterIP"),
        dir: scratch.path().to_owned(),
    };

    // Real WordPress: its installer, its sign-in, its REST API.
    let password = format!("owner-{}-Pass!", std::process::id());
    site.install(&password);
    let nonce = site.sign_in(&password);
    let image = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/medusa/product-image.png"),
    )
    .expect("the fixture image");
    let media = site.rest(
        &nonce,
        "POST",
        "/wp/v2/media",
        &[
            "-H",
            "content-type: image/png",
            "-H",
            "content-disposition: attachment; filename=shop-window.png",
        ],
        Some(&image),
        201,
    );
    let media_id = media["id"].as_i64().expect("the image's id");
    let image_path = media["source_url"]
        .as_str()
        .and_then(|url| url.strip_prefix(&format!("http://{}", site.host)))
        .expect("the image's address")
        .to_owned();
    let title = "Our shop window, before the backup";
    let post = site.rest(
        &nonce,
        "POST",
        "/wp/v2/posts",
        &["-H", "content-type: application/json"],
        Some(
            serde_json::json!({
                "title": title,
                "content": format!("<img src=\"{image_path}\">"),
                "status": "publish",
                "featured_media": media_id,
            })
            .to_string()
            .as_bytes(),
        ),
        201,
    );
    let post_id = post["id"].as_i64().expect("the post's id");
    assert_eq!(site.get(&image_path), (200, image.clone()));
    let web = running_wordpress(&namespace).await;
    let uploaded = docker(&[
        "exec",
        &web,
        "stat",
        "-c",
        "%u",
        &format!("/var/www/html{image_path}"),
    ]);
    assert_eq!(uploaded, "33", "WordPress wrote the upload as www-data");

    // The backup, as BackupStore makes it.
    let job = store_platform_provisioner::backup::start(&record, &source, engine.settings(), &kube)
        .await
        .expect("start the backup");
    job_succeeded(&kube, job.metadata.name.as_deref().expect("a name")).await;
    let backups = api
        .list_backups(TestEnv::real_node().as_tenant(
            TENANT,
            store_platform_proto::v1::ListBackupsRequest {
                store_id: id.clone(),
            },
        ))
        .await
        .expect("ListBackups")
        .into_inner()
        .backups;
    let snapshot = backups
        .iter()
        .find(|b| b.state == store_platform_proto::v1::BackupState::Succeeded as i32)
        .unwrap_or_else(|| panic!("no backup listed: {backups:?}"))
        .id
        .clone();
    let repository: Secret = Api::namespaced(client.clone(), &namespace)
        .get(store_platform_provisioner::backup::secret::STORE_SECRET)
        .await
        .expect("the store's backup Secret");
    let held = scratch.path().join("snapshot");
    restic_on_host(
        &repository,
        &[
            "restore",
            &snapshot,
            "--target",
            &held.display().to_string(),
        ],
    );
    let held = held.join("backup");
    let dump = std::fs::read_to_string(held.join("database.sql")).expect("the backup's dump");
    assert!(dump.contains(title), "the backup's dump holds the post");
    assert!(
        dump.contains("_wp_attachment_metadata"),
        "the backup's dump holds WordPress's serialized image metadata"
    );

    // The owner's mistake: the post and the image deleted in WordPress, which removes the image's files too.
    site.rest(
        &nonce,
        "DELETE",
        &format!("/wp/v2/posts/{post_id}&force=true"),
        &[],
        None,
        200,
    );
    site.rest(
        &nonce,
        "DELETE",
        &format!("/wp/v2/media/{media_id}&force=true"),
        &[],
        None,
        200,
    );
    assert_eq!(site.get(&image_path).0, 404);
    assert_ne!(database_dump(&namespace), normalized(&dump));

    // The restore operation's steps, as the reconciler runs them.
    let operation = restore::operation(&snapshot, false, jiff::Timestamp::now());
    let restoring = Restore::new(&engine, &operation);
    for step in ["safety-backup", "stop-writers"] {
        run_step(&restoring, step, &record, &kube).await;
    }
    // The writers are stopped: the store's Service answers with the maintenance page.
    let (status, page) = site.get("/");
    let page = String::from_utf8_lossy(&page);
    assert!(
        status == 503 && page.contains("is being restored"),
        "the storefront while the data is replaced: {status} {page}"
    );
    run_step(&restoring, "restore-data", &record, &kube).await;
    // The database is the backup's, byte for byte, before WordPress runs again.
    assert!(
        database_dump(&namespace) == normalized(&dump),
        "the restored database differs from the backup's dump"
    );
    run_step(&restoring, "start-writers", &record, &kube).await;

    // wp-content is the backup's, file for file, as the running WordPress sees it.
    let web = running_wordpress(&namespace).await;
    let live = docker(&["exec", &web, "sh", "-c", &tree("/var/www/html/wp-content")]);
    let backed_up = Command::new("sh")
        .args(["-c", &tree(&held.join("files").display().to_string())])
        .output()
        .expect("sh");
    assert_eq!(live, String::from_utf8_lossy(&backed_up.stdout).trim());
    assert!(live.contains("shop-window.png"), "{live}");
    // And WordPress serves the post and its image again.
    assert_eq!(site.get(&image_path), (200, image));
    // (Through its REST API: the node's WordPress image has no theme, Debian packages them apart.)
    let (status, page) = site.get(&format!("/?rest_route=/wp/v2/posts/{post_id}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&page));
    let restored: serde_json::Value = serde_json::from_slice(&page).expect("JSON");
    assert_eq!(restored["title"]["rendered"], title);
    assert_eq!(restored["featured_media"], media_id);

    api.delete_store(TestEnv::real_node().as_tenant(
        TENANT,
        store_platform_proto::v1::DeleteStoreRequest {
            store_id: id.clone(),
        },
    ))
    .await
    .expect("delete");
}

/// The store's WordPress site, reached as the store's address through its Service from the node's network
/// namespace, with a cookie jar of its own.
struct Site {
    netns: String,
    host: String,
    address: String,
    dir: std::path::PathBuf,
}

impl Site {
    /// curl in the node's network namespace: the status and the body.
    fn curl(&self, method: &str, path: &str, args: &[&str], body: Option<&[u8]>) -> (u16, Vec<u8>) {
        let jar = self.dir.join("cookies");
        let out = self.dir.join("body");
        let sent = self.dir.join("request");
        if !jar.exists() {
            // WordPress's sign-in asks for its test cookie first, as a browser's first visit gets it.
            std::fs::write(
                &jar,
                format!(
                    "{}\tFALSE\t/\tFALSE\t0\twordpress_test_cookie\tWP%20Cookie%20check\n",
                    self.host
                ),
            )
            .expect("cookie jar");
        }
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.netns))
            .args(["--", "curl", "-sS", "--max-time", "120", "-X", method])
            .arg("--resolve")
            .arg(format!("{}:80:{}", self.host, self.address))
            .arg("-b")
            .arg(&jar)
            .arg("-c")
            .arg(&jar)
            .arg("-o")
            .arg(&out)
            .args(["-w", "%{http_code}"])
            .args(args);
        if let Some(body) = body {
            std::fs::write(&sent, body).expect("request body");
            command
                .arg("--data-binary")
                .arg(format!("@{}", sent.display()));
        }
        let output = command
            .arg(format!("http://{}{path}", self.host))
            .output()
            .expect("curl");
        assert!(
            output.status.success(),
            "{method} {path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let status = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a status");
        (status, std::fs::read(&out).unwrap_or_default())
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.curl("GET", path, &[], None)
    }

    /// WordPress's installer, as its form posts it.
    fn install(&self, password: &str) {
        let form = [
            "weblog_title=Backed-up shop".to_owned(),
            "user_name=owner".to_owned(),
            format!("admin_password={password}"),
            format!("admin_password2={password}"),
            "admin_email=owner@example.com".to_owned(),
            "blog_public=0".to_owned(),
            "Submit=Install WordPress".to_owned(),
        ];
        let mut args = Vec::new();
        for field in &form {
            args.push("--data-urlencode");
            args.push(field.as_str());
        }
        let (status, page) = self.curl("POST", "/wp-admin/install.php?step=2", &args, None);
        let page = String::from_utf8_lossy(&page);
        assert!(
            status == 200 && page.contains("Success!"),
            "WordPress's installer answered {status}: {page}"
        );
    }

    /// Signs the owner in; returns the REST API's nonce for the session.
    fn sign_in(&self, password: &str) -> String {
        let pwd = format!("pwd={password}");
        let (status, page) = self.curl(
            "POST",
            "/wp-login.php",
            &[
                "--data-urlencode",
                "log=owner",
                "--data-urlencode",
                &pwd,
                "--data-urlencode",
                "testcookie=1",
            ],
            None,
        );
        assert_eq!(
            status,
            302,
            "WordPress's sign-in: {}",
            String::from_utf8_lossy(&page)
        );
        let (status, nonce) = self.get("/wp-admin/admin-ajax.php?action=rest-nonce");
        let nonce = String::from_utf8_lossy(&nonce).trim().to_owned();
        assert!(
            status == 200 && !nonce.is_empty() && nonce != "0",
            "no nonce: {status} {nonce}"
        );
        nonce
    }

    /// A REST API call as the signed-in owner; the reply's JSON, after checking its status.
    fn rest(
        &self,
        nonce: &str,
        method: &str,
        route: &str,
        args: &[&str],
        body: Option<&[u8]>,
        expected: u16,
    ) -> serde_json::Value {
        let header = format!("x-wp-nonce: {nonce}");
        let mut all = vec!["-H", header.as_str()];
        all.extend_from_slice(args);
        let (status, reply) = self.curl(method, &format!("/?rest_route={route}"), &all, body);
        assert_eq!(
            status,
            expected,
            "{method} {route}: {}",
            String::from_utf8_lossy(&reply)
        );
        serde_json::from_slice(&reply).expect("JSON")
    }
}

/// The running WordPress container of the store in `namespace`, once there is one.
async fn running_wordpress(namespace: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let id = container_named(namespace, "wordpress");
        if !id.is_empty() && !id.contains('\n') {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no running wordpress container"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The store's database as the backup dumps it (the same mariadb-dump options), in its MariaDB container, without
/// the line naming the host it was dumped from.
fn database_dump(namespace: &str) -> String {
    let database = container_id(namespace, "mariadb-0", "mariadb");
    let dump = docker(&[
        "exec",
        &database,
        "sh",
        "-c",
        "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb-dump --user=root --single-transaction --quick --routines \
         --triggers --events --hex-blob --default-character-set=utf8mb4 --skip-dump-date wordpress",
    ]);
    normalized(&dump)
}

fn normalized(dump: &str) -> String {
    dump.lines()
        .filter(|line| !line.starts_with("-- Host:"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// A shell command listing the tree under `dir`: each entry's path, owner, group, mode and type, and each file's
/// sha256.
fn tree(dir: &str) -> String {
    format!(
        "cd '{dir}' && find . -mindepth 1 ! -path './lost+found*' -printf '%P %U %G %m %y\\n' | LC_ALL=C sort && \
         find . -type f ! -path './lost+found*' -exec sha256sum {{}} + | LC_ALL=C sort -k2"
    )
}

/// restic on this host, against the store's repository, with its backup Secret (as an operator without the
/// platform runs it).
fn restic_on_host(secret: &Secret, args: &[&str]) -> String {
    let output =
        Command::new("restic")
            .args(["-o", "s3.bucket-lookup=path", "--no-cache"])
            .args(args)
            .env_clear()
            .envs(secret.data.iter().flatten().map(|(name, value)| {
                (name.clone(), String::from_utf8_lossy(&value.0).into_owned())
            }))
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("restic");
    assert!(
        output.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until Job `name` succeeded; its failure, in its container's words, fails the test.
async fn job_succeeded(kube: &Kube, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let job = kube
            .get::<k8s_openapi::api::batch::v1::Job>(name)
            .await
            .expect("get the Job")
            .expect("the Job");
        match store_platform_provisioner::backup::job_state(&job) {
            JobState::Succeeded => return,
            JobState::Failed => panic!(
                "Job {name} failed: {}",
                store_platform_provisioner::backup::failure(kube, &job).await
            ),
            JobState::Running => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Job {name} still runs"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs one of the restore's steps to its end, as the reconciler does: apply, then observe until done.
async fn run_step(restoring: &Restore<'_>, step: &str, store: &StoreRecord, kube: &Kube) {
    restoring.apply(step, store, kube).await.expect(step);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match restoring.observe(step, store, kube).await.expect(step) {
            Progress::Done => return,
            Progress::Failed(why) => panic!("{step} failed: {why}"),
            Progress::Waiting(what) | Progress::Recheck(what) => assert!(
                tokio::time::Instant::now() < deadline,
                "{step} did not end: {what}; {}",
                restoring.diagnose(step, store, kube).await
            ),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
