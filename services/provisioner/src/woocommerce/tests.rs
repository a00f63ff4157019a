//! The builders, checked without a cluster: what the objects promise, and that they fit together.

use k8s_openapi::{
    api::core::v1::{Container, PodSpec},
    apimachinery::pkg::api::resource::Quantity,
};
use kube::Resource as _;
use store_platform_runtime::record::{Engine, MANAGED_BY_LABEL, STORE_ID_LABEL, StoreSpec};

use super::{bootstrap, cron, ingress, mariadb, meta, policy, secret, wordpress};
use crate::settings::{Mail, MailSecurity, Settings, Tls};

const ID: &str = "shoes";

fn spec() -> StoreSpec {
    StoreSpec {
        display_name: "Shoes".into(),
        engine: Engine::Woocommerce,
        admin_email: "owner@example.com".into(),
        source: None,
    }
}

/// Settings with an SMTP relay that needs a password.
fn with_mail() -> Settings {
    Settings {
        mail: Some(Mail {
            host: "smtp.example.net".into(),
            port: 587,
            security: MailSecurity::Starttls,
            username: Some("relay".into()),
            password_file: Some("/etc/store-platform/smtp/password".into()),
            from: "shops@platform.example".into(),
            egress_cidrs: vec!["203.0.113.7/32".into()],
        }),
        ..Settings::local()
    }
}

/// Every pod the store runs: MariaDB, WordPress, the bootstrap Job and a cron run.
fn pod_specs(settings: &Settings) -> Vec<(&'static str, PodSpec)> {
    let template = |spec: Option<PodSpec>| spec.expect("pod spec");
    vec![
        (
            "mariadb",
            template(
                mariadb::stateful_set(ID, settings)
                    .spec
                    .expect("spec")
                    .template
                    .spec,
            ),
        ),
        (
            "wordpress",
            template(
                wordpress::deployment(ID, settings)
                    .spec
                    .expect("spec")
                    .template
                    .spec,
            ),
        ),
        (
            "bootstrap",
            template(
                bootstrap::job(ID, &spec(), settings)
                    .spec
                    .expect("spec")
                    .template
                    .spec,
            ),
        ),
        (
            "cron",
            template(
                cron::cron_job(ID, settings)
                    .spec
                    .expect("spec")
                    .job_template
                    .spec
                    .expect("job")
                    .template
                    .spec,
            ),
        ),
        (
            crate::backup::BACKUP,
            crate::backup::example::pod(
                ID,
                store_platform_runtime::record::Engine::Woocommerce,
                &crate::engine::Engine::backup_source(
                    &super::WooCommerce::new(std::sync::Arc::new(settings.clone())),
                    &crate::backup::example::store(
                        ID,
                        store_platform_runtime::record::Engine::Woocommerce,
                    ),
                ),
                settings,
            ),
        ),
    ]
}

/// What a pod takes from the quota: the larger of its init containers' and the sum of its containers'.
fn pod_footprint(spec: &PodSpec, kind: &str, name: &str) -> u64 {
    let running: u64 = spec
        .containers
        .iter()
        .map(|c| resource(c, kind, name))
        .sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| resource(c, kind, name))
        .max()
        .unwrap_or(0);
    running.max(init)
}

/// Parses the quantities this module writes: "250m", "2", "256Mi", "2Gi".
fn milli(quantity: &Quantity) -> u64 {
    let q = quantity.0.as_str();
    if let Some(m) = q.strip_suffix('m') {
        m.parse().expect("millis")
    } else if let Some(mi) = q.strip_suffix("Mi") {
        mi.parse::<u64>().expect("Mi") * 1000
    } else if let Some(gi) = q.strip_suffix("Gi") {
        gi.parse::<u64>().expect("Gi") * 1024 * 1000
    } else {
        q.parse::<u64>().expect("units") * 1000
    }
}

fn resource(container: &Container, kind: &str, name: &str) -> u64 {
    let requirements = container.resources.clone().expect("resources");
    let map = if kind == "requests" {
        requirements.requests
    } else {
        requirements.limits
    };
    milli(map.expect(kind).get(name).expect(name))
}

#[test]
fn the_quota_admits_every_pod_of_the_store_plus_a_spare() {
    let settings = Settings::local();
    let quota = policy::resource_quota(ID)
        .spec
        .expect("spec")
        .hard
        .expect("hard");
    let pods = pod_specs(&settings);
    for (kind, name) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "cpu"),
        ("limits", "memory"),
    ] {
        let footprints: Vec<u64> = pods
            .iter()
            .map(|(_, p)| pod_footprint(p, kind, name))
            .collect();
        let used: u64 = footprints.iter().sum();
        let largest = footprints.iter().copied().max().expect("pods");
        let hard = milli(&quota[&format!("{kind}.{name}")]);
        assert!(
            used + largest <= hard,
            "{kind}.{name}: {used} used + {largest} spare > {hard}"
        );
    }
    assert!(
        milli(&quota["pods"]) / 1000 > pods.len() as u64,
        "room for a replacement pod"
    );
    let storage = milli(&Quantity(settings.mariadb_storage.clone()))
        + milli(&Quantity(settings.wordpress_storage.clone()));
    assert!(storage <= milli(&quota["requests.storage"]));
    assert_eq!(quota["persistentvolumeclaims"].0, "2");
}

#[test]
fn every_container_fits_under_the_limit_range() {
    let range = policy::limit_range(ID).spec.expect("spec").limits;
    let container_max = range
        .iter()
        .find(|l| l.type_ == "Container")
        .and_then(|l| l.max.clone())
        .expect("max");
    for (pod, spec) in pod_specs(&Settings::local()) {
        for container in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            for name in ["cpu", "memory"] {
                assert!(
                    resource(container, "limits", name) <= milli(&container_max[name]),
                    "{pod} {name}"
                );
            }
        }
    }
    let pvc_max = range
        .iter()
        .find(|l| l.type_ == "PersistentVolumeClaim")
        .and_then(|l| l.max.clone())
        .expect("pvc max");
    assert!(milli(&Quantity(Settings::local().wordpress_storage)) <= milli(&pvc_max["storage"]));
}

#[test]
fn every_pod_satisfies_the_restricted_pod_security_level() {
    for (pod, spec) in pod_specs(&Settings::local()) {
        let security = spec.security_context.clone().expect("pod security context");
        assert_eq!(security.run_as_non_root, Some(true), "{pod}");
        assert_ne!(security.run_as_user, Some(0), "{pod}");
        assert_eq!(
            security.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault"),
            "{pod}"
        );
        assert_eq!(spec.automount_service_account_token, Some(false), "{pod}");
        for container in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let security = container
                .security_context
                .clone()
                .expect("container security context");
            assert_eq!(security.allow_privilege_escalation, Some(false), "{pod}");
            assert_eq!(
                security.capabilities.and_then(|c| c.drop),
                Some(vec!["ALL".to_owned()]),
                "{pod}"
            );
            assert_ne!(security.privileged, Some(true), "{pod}");
        }
        for volume in spec.volumes.unwrap_or_default() {
            assert!(volume.host_path.is_none(), "{pod} mounts a host path");
        }
    }
}

#[test]
fn wordpress_and_the_bootstrap_job_share_a_uid_and_the_document_root() {
    let pods = pod_specs(&Settings::local());
    let uid = |name: &str| {
        pods.iter()
            .find(|(pod, _)| *pod == name)
            .and_then(|(_, spec)| spec.security_context.clone()?.run_as_user)
    };
    assert_eq!(uid("wordpress"), Some(meta::WWW_DATA));
    assert_eq!(uid("bootstrap"), Some(meta::WWW_DATA));
    for (pod, spec) in pods
        .iter()
        .filter(|(pod, _)| !matches!(*pod, "mariadb" | "cron"))
    {
        let claims: Vec<String> = spec
            .volumes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
            .collect();
        assert_eq!(claims, [meta::WORDPRESS_DATA], "{pod}");
    }
}

#[test]
fn no_password_appears_outside_the_secret() {
    let settings = with_mail();
    let credentials = secret::credentials(ID);
    let passwords: Vec<String> = credentials
        .string_data
        .clone()
        .expect("data")
        .into_values()
        .filter(|v| v.len() == 32)
        .collect();
    assert_eq!(passwords.len(), 3);
    let relay_password = "relay-password-0123456789";
    let mail = secret::mail(ID, relay_password);
    assert_eq!(
        mail.string_data.expect("data")[secret::SMTP_PASSWORD],
        relay_password
    );
    let everything = serde_json::to_string(&(
        mariadb::stateful_set(ID, &settings),
        wordpress::deployment(ID, &settings),
        wordpress::files_config_map(ID),
        bootstrap::job(ID, &spec(), &settings),
        cron::cron_job(ID, &settings),
        policy::network_policies(ID, &settings),
        ingress::ingress(ID, &settings),
    ))
    .expect("serialize");
    for password in passwords.iter().map(String::as_str).chain([relay_password]) {
        assert!(!everything.contains(password));
    }
    assert!(
        everything.contains("secretKeyRef"),
        "passwords reach the pods by reference"
    );
}

#[test]
fn generated_passwords_are_long_random_and_distinct() {
    let a = secret::password();
    let b = secret::password();
    assert_eq!(a.len(), 32);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

#[test]
fn ports_name_their_protocol_for_server_side_apply_on_1_20() {
    let settings = Settings::local();
    for service in [mariadb::service(ID), wordpress::service(ID)] {
        for port in service.spec.expect("spec").ports.expect("ports") {
            assert_eq!(port.protocol.as_deref(), Some("TCP"));
        }
    }
    for (pod, spec) in pod_specs(&settings) {
        for container in spec.containers {
            for port in container.ports.unwrap_or_default() {
                assert_eq!(port.protocol.as_deref(), Some("TCP"), "{pod}");
            }
        }
    }
}

#[test]
fn every_object_is_labelled_and_lives_in_the_store_namespace() {
    let settings = Settings::local();
    let metas = [
        policy::resource_quota(ID).meta().clone(),
        policy::limit_range(ID).meta().clone(),
        secret::credentials(ID).meta().clone(),
        secret::mail(ID, "p").meta().clone(),
        wordpress::files_config_map(ID).meta().clone(),
        cron::cron_job(ID, &settings).meta().clone(),
        mariadb::service(ID).meta().clone(),
        mariadb::stateful_set(ID, &settings).meta().clone(),
        wordpress::volume_claim(ID, &settings).meta().clone(),
        wordpress::service(ID).meta().clone(),
        wordpress::deployment(ID, &settings).meta().clone(),
        ingress::ingress(ID, &settings).meta().clone(),
        bootstrap::script_config_map(ID).meta().clone(),
        bootstrap::job(ID, &spec(), &settings).meta().clone(),
    ]
    .into_iter()
    .chain(
        policy::network_policies(ID, &with_mail())
            .into_iter()
            .map(|p| p.metadata),
    );
    for meta in metas {
        let labels = meta.labels.clone().expect("labels");
        assert_eq!(
            meta.namespace.as_deref(),
            Some("store-shoes"),
            "{:?}",
            meta.name
        );
        assert_eq!(labels[MANAGED_BY_LABEL], "store-platform");
        assert_eq!(labels[STORE_ID_LABEL], ID);
    }
}

#[test]
fn network_policies_deny_by_default_and_open_only_the_store_paths() {
    let policies = policy::network_policies(ID, &Settings::local());
    let deny = &policies[0];
    assert_eq!(deny.metadata.name.as_deref(), Some("default-deny"));
    let spec = deny.spec.clone().expect("spec");
    assert!(spec.ingress.is_none() && spec.egress.is_none());
    assert_eq!(
        spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );
    let json = serde_json::to_string(&policies).expect("json");
    assert!(
        json.contains("ingress-nginx"),
        "the ingress controller reaches WordPress"
    );
    assert!(json.contains("3306") && json.contains("53"));
}

#[test]
fn the_ingress_carries_host_class_and_tls_settings() {
    let mut settings = Settings::local();
    let plain = ingress::ingress(ID, &settings).spec.expect("spec");
    assert_eq!(plain.ingress_class_name.as_deref(), Some("nginx"));
    assert!(plain.tls.is_none());
    assert_eq!(
        plain.rules.expect("rules")[0].host.as_deref(),
        Some("shoes.localhost")
    );

    settings.base_domain = "shops.example.com".into();
    settings.scheme = "https";
    settings.tls = Some(Tls {
        cluster_issuer: Some("letsencrypt".into()),
        secret_name: None,
    });
    let secure = ingress::ingress(ID, &settings);
    let annotations = secure.metadata.annotations.expect("annotations");
    assert_eq!(annotations["cert-manager.io/cluster-issuer"], "letsencrypt");
    let tls = secure.spec.expect("spec").tls.expect("tls");
    assert_eq!(
        tls[0].hosts,
        Some(vec!["shoes.shops.example.com".to_owned()])
    );
    assert_eq!(tls[0].secret_name.as_deref(), Some("shoes-tls"));
    assert!(
        wordpress::config_extra(ID, &settings)
            .contains("define('WP_HOME', 'https://shoes.shops.example.com');")
    );
}

#[test]
fn the_bootstrap_job_fails_fast_and_ships_the_repository_script() {
    let settings = Settings::local();
    let job = bootstrap::job(ID, &spec(), &settings).spec.expect("spec");
    assert_eq!(job.backoff_limit, Some(1));
    assert_eq!(
        job.active_deadline_seconds,
        Some(settings.bootstrap_deadline.as_secs() as i64)
    );
    let container = &job.template.spec.expect("pod").containers[0];
    assert_eq!(
        container.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    let env: Vec<String> = container
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for name in [
        "STORE_URL",
        "STORE_TITLE",
        "WP_ADMIN_USER",
        "WP_ADMIN_PASSWORD",
        "WORDPRESS_DB_HOST",
    ] {
        assert!(env.iter().any(|e| e == name), "{name}");
    }
    let script = bootstrap::script_config_map(ID).data.expect("data");
    assert!(script["bootstrap.sh"].starts_with("#!/usr/bin/env bash"));
}

#[test]
fn the_bootstrap_job_runs_on_the_node_of_wordpress_whose_volume_it_shares() {
    let pod = bootstrap::job(ID, &spec(), &Settings::local())
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod");
    let terms = pod
        .affinity
        .and_then(|a| a.pod_affinity)
        .and_then(|a| a.required_during_scheduling_ignored_during_execution)
        .expect("required pod affinity");
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].topology_key, "kubernetes.io/hostname");
    assert_eq!(
        terms[0]
            .label_selector
            .clone()
            .and_then(|s| s.match_labels)
            .expect("labels")[meta::APP_LABEL],
        meta::WORDPRESS
    );
    // The selector matches WordPress's pods, in the Job's own namespace.
    let wordpress = wordpress::deployment(ID, &Settings::local())
        .spec
        .expect("spec")
        .template
        .metadata
        .expect("meta")
        .labels
        .expect("labels");
    assert_eq!(wordpress[meta::APP_LABEL], meta::WORDPRESS);
    assert!(terms[0].namespaces.is_none());
}

#[test]
fn wordpress_copies_its_core_in_an_init_container_from_the_platform_files() {
    let settings = Settings::local();
    let pod = wordpress::deployment(ID, &settings)
        .spec
        .expect("spec")
        .template;
    let spec = pod.spec.expect("pod");
    let init = spec.init_containers.expect("init containers");
    assert_eq!(init.len(), 1);
    assert_eq!(init[0].image, Some(settings.wordpress_image.clone()));
    assert_eq!(
        init[0].command.as_deref(),
        Some(
            &[
                "bash".to_owned(),
                "/opt/store-platform/install-core.sh".to_owned()
            ][..]
        )
    );
    let mounts: Vec<&str> = init[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, ["/var/www/html", "/opt/store-platform"]);
    let files = wordpress::files_config_map(ID).data.expect("data");
    assert!(files["install-core.sh"].starts_with("#!/usr/bin/env bash"));
    assert!(files["store-platform-mail.php"].starts_with("<?php"));
    let config_map = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.config_map.clone())
        .expect("the files volume");
    assert_eq!(config_map.name, meta::WORDPRESS_FILES);
    // A change to the files replaces the pod.
    let annotations = pod
        .metadata
        .and_then(|m| m.annotations)
        .expect("annotations");
    assert_eq!(annotations["store-platform.io/platform-files"].len(), 64);
}

#[test]
fn wp_cron_runs_from_a_cron_job_with_wp_cli_never_from_visitors() {
    let settings = Settings::local();
    assert!(wordpress::config_extra(ID, &settings).contains("define('DISABLE_WP_CRON', true);"));
    // Nor does it wait on the internet it cannot reach.
    assert!(
        wordpress::config_extra(ID, &settings).contains("define('WP_HTTP_BLOCK_EXTERNAL', true);")
    );
    let cron_job = cron::cron_job(ID, &settings);
    let cron_spec = cron_job.spec.expect("spec");
    assert_eq!(cron_spec.schedule, "*/5 * * * *");
    assert_eq!(cron_spec.concurrency_policy.as_deref(), Some("Forbid"));
    // Its Jobs do not wake the platform's controller, which watches only the Jobs it manages.
    let job_labels = cron_spec
        .job_template
        .metadata
        .and_then(|m| m.labels)
        .expect("job labels");
    assert!(!job_labels.contains_key(MANAGED_BY_LABEL));
    assert_eq!(job_labels[STORE_ID_LABEL], ID);

    // The platform's cron script, with WP-CLI in the WordPress image, on WordPress's volume and node, as the
    // bootstrap runs: the same pod, another script.
    let pod = cron_spec
        .job_template
        .spec
        .expect("job")
        .template
        .spec
        .expect("pod");
    let bootstrap = bootstrap::job(ID, &spec(), &settings)
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod");
    let container = &pod.containers[0];
    assert_eq!(
        container.command,
        Some(vec![
            "bash".to_owned(),
            format!("{}/{}", wordpress::SCRIPTS_DIR, cron::SCRIPT_KEY)
        ])
    );
    assert_eq!(container.image, bootstrap.containers[0].image);
    assert_eq!(
        container.volume_mounts,
        bootstrap.containers[0].volume_mounts
    );
    assert_eq!(pod.affinity, bootstrap.affinity);
    assert_eq!(pod.security_context, bootstrap.security_context);
    let names: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    for name in [
        "WORDPRESS_DB_HOST",
        "WORDPRESS_DB_PASSWORD",
        "WORDPRESS_CONFIG_EXTRA",
        "STORE_URL",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "script")
        .and_then(|v| v.config_map.clone())
        .expect("the script's ConfigMap");
    assert_eq!(volume.name, meta::CRON);
    let script = cron::script_config_map(ID).data.expect("data");
    assert_eq!(script[cron::SCRIPT_KEY], cron::SCRIPT);
    assert!(cron::SCRIPT.contains("wpcli action-scheduler run"));
}

#[test]
fn network_policies_let_cron_reach_the_database_and_nothing_else() {
    let policies = policy::network_policies(ID, &Settings::local());
    let named = |name: &str| {
        policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.spec.clone())
            .unwrap_or_else(|| panic!("policy {name}"))
    };
    assert!(
        policies
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some("cron-egress")),
        "cron runs need no policy of their own"
    );
    let egress = serde_json::to_string(&named("store-egress")).expect("json");
    assert!(
        egress.contains("wp-cron") && egress.contains("3306"),
        "{egress}"
    );
    let database = serde_json::to_string(&named("mariadb-ingress")).expect("json");
    assert!(database.contains("wp-cron"), "{database}");
    let ingress = serde_json::to_string(&named("wordpress-ingress")).expect("json");
    assert!(ingress.contains("woocommerce-bootstrap") && !ingress.contains("wp-cron"));
    assert!(
        policies
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some("mail-egress")),
        "no relay, no mail egress"
    );
}

#[test]
fn with_a_relay_the_pods_get_its_settings_and_may_reach_its_port() {
    let settings = with_mail();
    let names = |env: Vec<k8s_openapi::api::core::v1::EnvVar>| -> Vec<String> {
        env.into_iter().map(|e| e.name).collect()
    };
    let expected = [
        "STORE_SMTP_HOST",
        "STORE_SMTP_PORT",
        "STORE_SMTP_SECURITY",
        "STORE_SMTP_FROM",
        "STORE_SMTP_USERNAME",
        "STORE_SMTP_PASSWORD",
    ];
    assert_eq!(names(wordpress::mail_env(&settings)), expected);
    for (pod, spec) in pod_specs(&settings) {
        let env = names(spec.containers[0].env.clone().unwrap_or_default());
        let has_mail = expected.iter().all(|e| env.contains(&(*e).to_owned()));
        // Cron runs send mail too (WooCommerce's deferred and scheduled mails).
        assert_eq!(
            has_mail,
            matches!(pod, "wordpress" | "bootstrap" | "cron"),
            "{pod}"
        );
    }
    let password = wordpress::mail_env(&settings)
        .into_iter()
        .find(|e| e.name == "STORE_SMTP_PASSWORD")
        .and_then(|e| e.value_from)
        .and_then(|v| v.secret_key_ref)
        .expect("from a Secret");
    assert_eq!(
        (password.name.as_str(), password.key.as_str()),
        (secret::MAIL_SECRET, secret::SMTP_PASSWORD)
    );
    assert!(wordpress::mail_env(&Settings::local()).is_empty());

    let policies = policy::network_policies(ID, &settings);
    let mail = policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("mail-egress"))
        .and_then(|p| p.spec.clone())
        .expect("mail egress");
    let json = serde_json::to_string(&mail).expect("json");
    assert!(
        json.contains("203.0.113.7/32") && json.contains("587") && json.contains("wp-cron"),
        "{json}"
    );
}

#[test]
fn a_reconfigure_applies_every_step_but_the_record_and_the_bootstrap() {
    let engine = super::WooCommerce::new(std::sync::Arc::new(Settings::local()));
    let steps = crate::engine::Engine::reconfigure_steps(&engine);
    assert!(!steps.contains(&"namespace") && !steps.contains(&"bootstrap"));
    for step in [
        "policies",
        "secrets",
        "mariadb",
        "wordpress",
        "ingress",
        "cron",
        "backups",
    ] {
        assert!(steps.contains(&step), "{step}: {steps:?}");
    }
}
