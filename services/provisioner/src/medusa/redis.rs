//! Redis: Medusa's event bus, workflow engine, locks and cache. Its queues hold events not yet processed, so it
//! keeps an append-only file on a volume: a restart loses none. A one-replica StatefulSet and a headless Service.

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Container, ContainerPort, Service},
};

use super::{
    meta::{DATABASE_UID, REDIS, REDIS_PORT as PORT},
    policy::REDIS_SIZE,
};
use crate::{
    settings::Settings,
    shared::{
        meta::container_security,
        workload::{database_service, exec_probe, single_stateful_set},
    },
};

const DATA: &str = "/data";

/// A restore empties Redis: its queued events, workflow state and cached answers speak of the data the restore
/// replaced.
pub const FLUSH: &str = "set -eu
redis-cli -h \"$CACHE_HOST\" -p \"$CACHE_PORT\" FLUSHALL
";

pub fn service(id: &str) -> Service {
    database_service(id, REDIS, "redis", PORT)
}

pub fn stateful_set(id: &str, settings: &Settings) -> StatefulSet {
    let ping = format!("exec redis-cli -p {PORT} ping | grep -qx PONG");
    let container = Container {
        name: REDIS.to_owned(),
        image: Some(settings.medusa.redis_image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(
            [
                "redis-server",
                "--appendonly",
                "yes",
                "--dir",
                DATA,
                "--port",
                &PORT.to_string(),
                // BullMQ, which Medusa's queues run on, must never have its keys evicted.
                "--maxmemory-policy",
                "noeviction",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("redis".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // As PostgreSQL's: every second while it starts, then every 5 s.
        startup_probe: Some(exec_probe(&ping, 0, 1, 60)),
        readiness_probe: Some(exec_probe(&ping, 0, 5, 3)),
        liveness_probe: Some(exec_probe(&ping, 0, 20, 6)),
        resources: Some(REDIS_SIZE.requirements()),
        security_context: Some(container_security()),
        ..Container::default()
    };
    single_stateful_set(
        id,
        REDIS,
        container,
        DATABASE_UID,
        (DATA, &settings.medusa.redis_storage),
        settings,
    )
}
