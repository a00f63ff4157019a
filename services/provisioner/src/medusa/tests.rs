use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::{
    backend, bootstrap, ingress, meta, parse_publishable_key, policy, postgres, redis, secret,
    storefront,
};
use crate::{settings::Settings, shared::meta::APP_LABEL};

const ID: &str = "shoes";

/// A Deployment's one container.
fn first(deployment: k8s_openapi::api::apps::v1::Deployment) -> Container {
    deployment
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0]
        .clone()
}

/// Every pod spec of the store, by component.
fn pods(settings: &Settings) -> Vec<(&'static str, PodSpec)> {
    let template = |spec: Option<k8s_openapi::api::core::v1::PodTemplateSpec>| {
        spec.and_then(|t| t.spec).expect("pod spec")
    };
    vec![
        (
            meta::POSTGRES,
            template(
                postgres::stateful_set(ID, settings)
                    .spec
                    .map(|s| s.template),
            ),
        ),
        (
            meta::REDIS,
            template(redis::stateful_set(ID, settings).spec.map(|s| s.template)),
        ),
        (
            meta::SERVER,
            template(backend::server(ID, settings).spec.map(|s| s.template)),
        ),
        (
            meta::WORKER,
            template(backend::worker(ID, settings).spec.map(|s| s.template)),
        ),
        (
            meta::BOOTSTRAP,
            template(bootstrap::job(ID, settings, None).spec.map(|s| s.template)),
        ),
        (
            meta::STOREFRONT,
            template(
                storefront::deployment(ID, settings)
                    .spec
                    .map(|s| s.template),
            ),
        ),
        (
            crate::backup::BACKUP,
            crate::backup::example::pod(
                ID,
                store_platform_runtime::record::Engine::Medusa,
                &crate::engine::Engine::backup_source(
                    &super::Medusa::new(std::sync::Arc::new(settings.clone())),
                    &crate::backup::example::store(
                        ID,
                        store_platform_runtime::record::Engine::Medusa,
                    ),
                ),
                settings,
            ),
        ),
    ]
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a k8s_openapi::api::core::v1::EnvVar> {
    container.env.as_ref()?.iter().find(|e| e.name == name)
}

#[test]
fn every_pod_meets_the_restricted_level_and_has_no_api_token() {
    for (app, pod) in pods(&Settings::local()) {
        let security = pod.security_context.clone().expect("pod security");
        assert_eq!(security.run_as_non_root, Some(true), "{app}");
        assert!(security.run_as_user.is_some_and(|uid| uid > 0), "{app}");
        assert_eq!(
            security.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault"),
            "{app}"
        );
        assert_eq!(pod.automount_service_account_token, Some(false), "{app}");
        for container in &pod.containers {
            let security = container
                .security_context
                .clone()
                .expect("container security");
            assert_eq!(security.allow_privilege_escalation, Some(false), "{app}");
            assert_eq!(
                security.capabilities.and_then(|c| c.drop),
                Some(vec!["ALL".to_owned()]),
                "{app}"
            );
            assert!(container.resources.is_some(), "{app} names its resources");
        }
    }
}

#[test]
fn secrets_reach_pods_only_by_reference() {
    let settings = Settings::local();
    for (app, pod) in pods(&settings) {
        for container in &pod.containers {
            for var in container.env.iter().flatten() {
                let value = var.value.clone().unwrap_or_default();
                assert!(
                    !value.contains("pk_") && value.len() < 200,
                    "{app}: {} carries a literal secret?",
                    var.name
                );
                if [
                    "POSTGRES_PASSWORD",
                    "JWT_SECRET",
                    "COOKIE_SECRET",
                    "ADMIN_PASSWORD",
                ]
                .contains(&var.name.as_str())
                {
                    assert!(var.value.is_none(), "{app}: {} is a literal", var.name);
                    assert!(
                        var.value_from
                            .as_ref()
                            .and_then(|v| v.secret_key_ref.as_ref())
                            .is_some(),
                        "{app}: {} is not from the Secret",
                        var.name
                    );
                }
            }
        }
    }
    // The database URL names the password only as a variable the kubelet expands, defined before it.
    let server = backend::server(ID, &settings);
    let container = &server
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    let names: Vec<_> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    let url = env(container, "DATABASE_URL")
        .and_then(|e| e.value.clone())
        .expect("url");
    assert_eq!(
        url,
        "postgres://medusa:$(POSTGRES_PASSWORD)@postgres:5432/medusa"
    );
    let position = |name: &str| names.iter().position(|n| *n == name).expect(name);
    assert!(position("POSTGRES_PASSWORD") < position("DATABASE_URL"));
}

#[test]
fn the_server_and_worker_run_one_image_in_their_own_modes() {
    let settings = Settings::local();
    let server = first(backend::server(ID, &settings));
    let worker = first(backend::worker(ID, &settings));
    assert_eq!(server.image, worker.image);
    let value = |c: &Container, name: &str| env(c, name).and_then(|e| e.value.clone());
    assert_eq!(
        value(&server, "MEDUSA_WORKER_MODE").as_deref(),
        Some("server")
    );
    assert_eq!(
        value(&worker, "MEDUSA_WORKER_MODE").as_deref(),
        Some("worker")
    );
    assert_eq!(
        value(&server, "DISABLE_MEDUSA_ADMIN").as_deref(),
        Some("false")
    );
    assert_eq!(
        value(&worker, "DISABLE_MEDUSA_ADMIN").as_deref(),
        Some("true")
    );
    for cors in ["STORE_CORS", "ADMIN_CORS", "AUTH_CORS"] {
        assert_eq!(
            value(&server, cors).as_deref(),
            Some("http://shoes.localhost"),
            "{cors}"
        );
    }
    assert_eq!(value(&server, "COOKIE_SECURE").as_deref(), Some("false"));
    let https = Settings {
        scheme: "https",
        ..Settings::local()
    };
    let secure = first(backend::server(ID, &https));
    assert_eq!(value(&secure, "COOKIE_SECURE").as_deref(), Some("true"));
    // Readiness asks more than the static /health.
    let ready = server
        .readiness_probe
        .and_then(|p| p.http_get)
        .and_then(|g| g.path);
    assert_eq!(ready.as_deref(), Some("/store-platform/ready"));
    // The worker has no such route: the image's entrypoint asks for it, as its startup probe; then its readiness is
    // Medusa answering.
    let worker = first(backend::worker(ID, &Settings::local()));
    assert_eq!(
        worker
            .readiness_probe
            .clone()
            .and_then(|p| p.http_get)
            .and_then(|g| g.path)
            .as_deref(),
        Some("/health")
    );
    let ready = worker
        .startup_probe
        .and_then(|p| p.exec)
        .and_then(|e| e.command);
    assert_eq!(
        ready,
        Some(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("exec {} ready", meta::ENTRYPOINT)
        ])
    );
}

#[test]
fn the_bootstrap_job_never_runs_twice_at_once_and_reports_in_its_termination_message() {
    let job = bootstrap::job(ID, &Settings::local(), None);
    let spec = job.spec.expect("spec");
    assert_eq!(spec.parallelism, Some(1));
    assert_eq!(spec.completions, Some(1));
    let container = &spec.template.spec.expect("pod").containers[0];
    assert_eq!(
        container.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    let value = |name: &str| env(container, name).and_then(|e| e.value.clone());
    assert_eq!(
        value("PUBLISHABLE_KEY_FILE").as_deref(),
        Some(bootstrap::KEY_FILE)
    );
    assert_eq!(value("STORE_CURRENCY").as_deref(), Some("eur"));
    assert_eq!(
        value("STORE_COUNTRY").as_deref(),
        Some("de,fr,it,es,nl,be,at,dk,se")
    );
    // Every country with its standard rate, prices with tax included, as the seed reads them.
    assert_eq!(
        value("STORE_TAX_RATES").as_deref(),
        Some("de=19,fr=20,it=22,es=21,nl=21,be=21,at=20,dk=25,se=25")
    );
    assert_eq!(value("STORE_PRICES_INCLUDE_TAX").as_deref(), Some("true"));
}

#[test]
fn uploaded_files_live_on_the_stores_volume_and_are_served_at_its_own_address() {
    let settings = Settings::local();
    let claim = backend::uploads_claim(ID, &settings);
    assert_eq!(claim.metadata.name.as_deref(), Some(meta::UPLOADS));
    let spec = claim.spec.expect("spec");
    assert_eq!(
        spec.resources.and_then(|r| r.requests).expect("requests")["storage"].0,
        settings.medusa.uploads_storage
    );
    for deployment in [
        backend::server(ID, &settings),
        backend::worker(ID, &settings),
    ] {
        let name = deployment.metadata.name.clone().expect("name");
        let spec = deployment.spec.expect("spec");
        // A new pod could never mount the volume its predecessor holds on another node.
        assert_eq!(
            spec.strategy.and_then(|s| s.type_).as_deref(),
            Some("Recreate"),
            "{name}"
        );
        let pod = spec.template.spec.expect("pod");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == meta::UPLOADS);
        assert_eq!(
            volume
                .and_then(|v| v.persistent_volume_claim.as_ref())
                .map(|c| c.claim_name.as_str()),
            Some(meta::UPLOADS),
            "{name}"
        );
        let container = &pod.containers[0];
        let mount = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == meta::UPLOADS)
            .expect("the uploads mount");
        assert_eq!(mount.mount_path, meta::UPLOADS_DIR, "{name}");
        assert!(
            meta::UPLOADS_DIR.starts_with(meta::APP_DIR),
            "Medusa serves /static from its working directory"
        );
        assert_eq!(
            env(container, "MEDUSA_FILE_URL").and_then(|e| e.value.clone()),
            Some("http://shoes.localhost/static".to_owned()),
            "{name}"
        );
        // The worker writes exports into the same ReadWriteOnce volume: on the server's node.
        let affinity = pod
            .affinity
            .and_then(|a| a.pod_affinity)
            .and_then(|a| a.required_during_scheduling_ignored_during_execution);
        if name == meta::WORKER {
            let terms = affinity.expect("the worker's affinity");
            assert_eq!(terms[0].topology_key, "kubernetes.io/hostname");
            assert_eq!(
                terms[0]
                    .label_selector
                    .clone()
                    .and_then(|s| s.match_labels)
                    .expect("labels")[APP_LABEL],
                meta::SERVER
            );
        } else {
            assert!(affinity.is_none());
        }
    }
}

#[test]
fn the_quota_holds_every_pod_at_once_and_the_limit_range_admits_each() {
    let quota = policy::resource_quota(ID)
        .spec
        .expect("spec")
        .hard
        .expect("hard");
    let pods = pods(&Settings::local());
    assert_eq!(
        quota["pods"].0,
        (pods.len() + 1).to_string(),
        "each pod and a rollout's spare"
    );
    let mi = |q: &str| q.trim_end_matches("Mi").parse::<u64>().expect("Mi");
    let limits: u64 = pods
        .iter()
        .flat_map(|(_, p)| p.containers.iter())
        .map(|c| {
            let limits = c.resources.clone().and_then(|r| r.limits).expect("limits");
            mi(&limits["memory"].0)
        })
        .sum();
    assert!(limits < mi(&quota["limits.memory"].0));
    // PostgreSQL's, Redis's and the uploads' volumes, at their default sizes.
    assert_eq!(quota["persistentvolumeclaims"].0, "3");
    let medusa = Settings::local().medusa;
    let gi = |q: &str| q.trim_end_matches("Gi").parse::<u64>().expect("Gi");
    let volumes =
        gi(&medusa.postgres_storage) + gi(&medusa.redis_storage) + gi(&medusa.uploads_storage);
    assert!(volumes <= gi(&quota["requests.storage"].0), "{volumes}Gi");
    for (app, pod) in &pods {
        for container in &pod.containers {
            let limits = container
                .resources
                .clone()
                .and_then(|r| r.limits)
                .expect("limits");
            assert!(mi(&limits["memory"].0) <= 1024, "{app} fits the LimitRange");
        }
    }
}

#[test]
fn network_policies_let_through_exactly_the_store_flows() {
    let policies = policy::network_policies(ID, &Settings::local());
    let names: Vec<_> = policies
        .iter()
        .map(|p| p.metadata.name.clone().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "default-deny",
            "allow-dns",
            "server-ingress",
            "storefront-ingress",
            "postgres-ingress",
            "redis-ingress",
            "backend-egress"
        ]
    );
    let text = serde_json::to_string(&policies).expect("json");
    assert!(!text.contains("0.0.0.0/0"), "no egress to the world");
    // The storefront gets no egress of its own (the browser calls the backend); the backends reach exactly
    // PostgreSQL and Redis.
    for policy in &policies[2..] {
        let spec = policy.spec.clone().expect("spec");
        if spec.egress.is_none() {
            continue;
        }
        let selected = serde_json::to_string(&spec.pod_selector).expect("json");
        assert!(!selected.contains(meta::STOREFRONT), "{selected}");
        let ports: Vec<_> = spec
            .egress
            .iter()
            .flatten()
            .flat_map(|rule| rule.ports.iter().flatten())
            .map(|port| port.port.clone())
            .collect();
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int;
        assert_eq!(
            ports,
            [Some(Int(meta::POSTGRES_PORT)), Some(Int(meta::REDIS_PORT))]
        );
    }
}

#[test]
fn the_host_sends_the_apis_and_admin_to_the_server_and_the_rest_to_the_storefront() {
    let ingress = ingress::ingress(ID, &Settings::local());
    let rule = &ingress.spec.expect("spec").rules.expect("rules")[0];
    assert_eq!(rule.host.as_deref(), Some("shoes.localhost"));
    let routes: Vec<(String, String)> = rule
        .http
        .as_ref()
        .expect("http")
        .paths
        .iter()
        .map(|p| {
            (
                p.path.clone().expect("path"),
                p.backend.service.as_ref().expect("service").name.clone(),
            )
        })
        .collect();
    for prefix in ["/store", "/admin", "/auth", "/app", "/static"] {
        assert!(
            routes.contains(&(prefix.to_owned(), meta::SERVER.to_owned())),
            "{prefix}"
        );
    }
    assert!(routes.contains(&("/".to_owned(), meta::STOREFRONT.to_owned())));
}

#[test]
fn secrets_are_fresh_and_the_admin_signs_in_as_the_owner() {
    let a = secret::credentials(ID, "owner@example.com")
        .string_data
        .expect("data");
    let b = secret::credentials(ID, "owner@example.com")
        .string_data
        .expect("data");
    assert_eq!(a[secret::ADMIN_EMAIL], "owner@example.com");
    for key in [
        secret::POSTGRES_PASSWORD,
        secret::JWT_SECRET,
        secret::COOKIE_SECRET,
        secret::ADMIN_PASSWORD,
    ] {
        assert_ne!(a[key], b[key], "{key}");
        assert!(a[key].len() >= 32, "{key}");
    }
}

#[test]
fn only_a_publishable_key_is_read_back() {
    assert_eq!(parse_publishable_key("pk_01abc\n"), Some("pk_01abc"));
    assert_eq!(parse_publishable_key("pk_"), None);
    assert_eq!(parse_publishable_key("Error: migration failed"), None);
    assert_eq!(parse_publishable_key("pk_ab cd"), None);
}

#[test]
fn every_object_is_labelled_with_its_component() {
    let settings = Settings::local();
    let set = postgres::stateful_set(ID, &settings);
    assert_eq!(
        set.metadata.labels.expect("labels")[APP_LABEL],
        meta::POSTGRES
    );
    assert_eq!(
        storefront::config(ID, "pk_1")
            .metadata
            .labels
            .expect("labels")[APP_LABEL],
        meta::STOREFRONT
    );
}

/// The lines of a Dockerfile's final stage that start with `instruction`, without it.
fn final_stage(path: &str, instruction: &str) -> Vec<String> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let text = std::fs::read_to_string(&file).expect("Dockerfile");
    let last = text.rsplit("\nFROM ").next().expect("a stage");
    last.lines()
        .filter_map(|line| line.strip_prefix(&format!("{instruction} ")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_pods_agree_with_their_images() {
    let settings = Settings::local();
    let dockerfile = "deploy/docker/medusa/Dockerfile";
    let server = first(backend::server(ID, &settings));
    // The pods give the entrypoint one argument and rely on the image's working directory.
    assert_eq!(server.command, None);
    assert_eq!(
        final_stage(dockerfile, "ENTRYPOINT"),
        vec![format!("[\"{}\"]", meta::ENTRYPOINT)]
    );
    assert!(meta::ENTRYPOINT.starts_with(meta::APP_DIR));
    assert_eq!(
        final_stage(dockerfile, "WORKDIR"),
        vec![format!("{}/.medusa/server", meta::APP_DIR)]
    );
    let user = format!("{0}:{0}", meta::NODE_UID);
    assert_eq!(final_stage(dockerfile, "USER"), vec![user.clone()]);
    assert_eq!(
        final_stage(dockerfile, "EXPOSE"),
        vec![meta::SERVER_PORT.to_string()]
    );
    let storefront = "deploy/docker/medusa-storefront/Dockerfile";
    assert_eq!(final_stage(storefront, "USER"), vec![user]);
    assert_eq!(
        final_stage(storefront, "EXPOSE"),
        vec![meta::STOREFRONT_PORT.to_string()]
    );
}

/// The bootstrap starts beside PostgreSQL and Redis and retries its own connections: their names resolve as soon as
/// the pods have addresses, not a readiness tick later.
#[test]
fn the_databases_names_resolve_before_their_readiness() {
    for service in [postgres::service("shop"), redis::service("shop")] {
        let spec = service.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
    }
}
