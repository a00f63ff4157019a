//! The Medusa backend: one image, two Deployments. The server answers HTTP (the store and admin APIs, the admin
//! dashboard at `/app`, the uploaded files at `/static`); the worker processes events, scheduled jobs and workflows.
//! A server without a worker never processes an event, so the store is ready only when both are. A Service in
//! front of the server. Both mount the store's uploads volume: the server writes and serves product images, the
//! worker writes product exports and reads imports. It is ReadWriteOnce, so the worker runs on the server's node
//! and both are replaced, not rolled (a new pod could wait forever for a volume its predecessor holds).

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        core::v1::{
            Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim,
            PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Probe, Service, Volume,
            VolumeMount,
        },
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::{
    meta::{
        ENTRYPOINT, NODE_UID, POSTGRES, POSTGRES_PORT, REDIS, REDIS_PORT, SERVER,
        SERVER_PORT as PORT, UPLOADS, UPLOADS_DIR, UPLOADS_PATH, WORKER,
    },
    policy::{SERVER_SIZE, WORKER_SIZE},
    secret::{COOKIE_SECRET, DATABASE, DATABASE_USER, JWT_SECRET, POSTGRES_PASSWORD},
};
use crate::{
    settings::Settings,
    shared::{
        meta::{
            container_security, env, labels, object_meta, pod_security, secret_env, selector,
            volume_claim_spec,
        },
        workload::{exec_probe, on_the_node_of, service as workload_service},
    },
};

/// What every backend process (server, worker, bootstrap) reads: where its database and Redis are, the secrets it
/// signs with, and the one origin its browsers come from (the admin dashboard calls its own origin, so one image
/// serves every host). The database password stays in the Secret: the URL
/// is composed by the kubelet from the variable before it.
pub fn backend_env(id: &str, settings: &Settings) -> Vec<EnvVar> {
    let origin = settings.origin(id);
    vec![
        secret_env("POSTGRES_PASSWORD", POSTGRES_PASSWORD),
        env(
            "DATABASE_URL",
            format!(
                "postgres://{DATABASE_USER}:$(POSTGRES_PASSWORD)@{POSTGRES}:{}/{DATABASE}",
                POSTGRES_PORT
            ),
        ),
        env("REDIS_URL", format!("redis://{REDIS}:{}", REDIS_PORT)),
        secret_env("JWT_SECRET", JWT_SECRET),
        secret_env("COOKIE_SECRET", COOKIE_SECRET),
        env("STORE_CORS", origin.clone()),
        env("ADMIN_CORS", origin.clone()),
        // Uploaded files' URLs are built on the store's own address (the Ingress routes /static to the server).
        env("MEDUSA_FILE_URL", file_url(id, settings)),
        env("AUTH_CORS", origin),
        // Plain http on `*.localhost`: a `secure` session cookie would never be set; behind TLS it must be.
        env("COOKIE_SECURE", (settings.scheme == "https").to_string()),
        env("NODE_ENV", "production"),
    ]
}

/// Where store `id`'s uploaded files are served: the address every uploaded file's URL begins with.
pub fn file_url(id: &str, settings: &Settings) -> String {
    format!("{}{UPLOADS_PATH}", settings.origin(id))
}

fn deployment(id: &str, app: &str, mode: &str, settings: &Settings) -> Deployment {
    let mut environment = backend_env(id, settings);
    environment.push(env("MEDUSA_WORKER_MODE", mode));
    environment.push(env("DISABLE_MEDUSA_ADMIN", (mode == "worker").to_string()));
    // `/health` answers before the database is reached; `/store-platform/ready` asks PostgreSQL and Redis. The
    // worker serves no routes but `/health`, so its image's entrypoint asks them for it.
    let probe = |path: &str, delay: i32, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(PORT),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let size = if mode == "worker" {
        WORKER_SIZE
    } else {
        SERVER_SIZE
    };
    let container = Container {
        name: app.to_owned(),
        image: Some(settings.medusa.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(vec!["start".to_owned()]),
        env: Some(environment),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // Asked every second while it starts (for up to 3 minutes), then readiness every 2 s (an HTTP request,
        // cheap); with the startup probe passed, a kubelet asks readiness at once (Kubernetes 1.22 and later; a 1.20
        // kubelet reports a passed startup probe only at its next sync of the pod, up to a minute later, so the
        // readiness probe is what makes the pod ready there). The server: Medusa listening, then its readiness
        // route (PostgreSQL and Redis). The worker serves no routes: its start is the image's own check (Medusa
        // listening, PostgreSQL and Redis answering: a process in the container), its readiness Medusa's /health,
        // without a process every 10 s for the store's life. Its databases stay watched by the server's readiness.
        startup_probe: Some(if mode == "worker" {
            exec_probe(&format!("exec {ENTRYPOINT} ready"), 0, 1, 180)
        } else {
            probe("/health", 0, 1, 180)
        }),
        readiness_probe: Some(probe(
            if mode == "worker" {
                "/health"
            } else {
                "/store-platform/ready"
            },
            0,
            2,
            3,
        )),
        liveness_probe: Some(probe("/health", 0, 20, 3)),
        resources: Some(size.requirements()),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![VolumeMount {
            name: UPLOADS.to_owned(),
            mount_path: UPLOADS_DIR.to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    Deployment {
        metadata: object_meta(id, app, app),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(app),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(id, app)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: UPLOADS.to_owned(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: UPLOADS.to_owned(),
                            ..PersistentVolumeClaimVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    affinity: (mode == "worker").then(|| on_the_node_of(SERVER)),
                    security_context: Some(pod_security(NODE_UID)),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(30),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

pub fn server(id: &str, settings: &Settings) -> Deployment {
    deployment(id, SERVER, "server", settings)
}

pub fn worker(id: &str, settings: &Settings) -> Deployment {
    deployment(id, WORKER, "worker", settings)
}

/// The store's uploaded files (product images, CSV imports and exports), on a volume of their own.
pub fn uploads_claim(id: &str, settings: &Settings) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: object_meta(id, UPLOADS, SERVER),
        spec: Some(volume_claim_spec(
            &settings.medusa.uploads_storage,
            settings.storage_class.clone(),
        )),
        ..PersistentVolumeClaim::default()
    }
}

/// The server's Service: port 80 to Medusa's.
pub fn service(id: &str) -> Service {
    workload_service(id, SERVER, "http", 80, PORT, false)
}
