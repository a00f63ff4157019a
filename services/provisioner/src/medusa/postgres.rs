//! PostgreSQL: a one-replica StatefulSet of the official image (its `POSTGRES_*` environment contract) and a
//! headless Service.

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Container, ContainerPort, Service},
};

use super::{
    meta::{DATABASE_UID, POSTGRES, POSTGRES_PORT as PORT},
    policy::POSTGRES_SIZE,
    secret::{DATABASE, DATABASE_USER, POSTGRES_PASSWORD},
};
use crate::{
    settings::Settings,
    shared::{
        meta::{container_security, env, secret_env},
        workload::{database_service, exec_probe, single_stateful_set},
    },
};

/// The volume's root holds `lost+found` on many provisioners; initdb wants an empty directory.
const DATA: &str = "/var/lib/postgresql/data";

/// The backup's dump, in the store's own PostgreSQL image (pg_dump refuses a server newer than itself): plain SQL that
/// drops and recreates each object, so it restores over the store's database, owned by whoever restores it. The
/// password reaches pg_dump in PGPASSWORD. pg_dump since 17.6 and 15.14 guards a plain dump with a random
/// `\restrict` key, which made every dump differ and defeated deduplication; the store's own secret key
/// (DUMP_RESTRICT_KEY, from its backup Secret) keeps the guard and makes an unchanged store's dumps identical.
pub const DUMP: &str = "set -eu
umask 077
set --
if pg_dump --help | grep -q -- --restrict-key; then set -- --restrict-key=\"$DUMP_RESTRICT_KEY\"; fi
pg_dump --host=\"$DATABASE_HOST\" --port=\"$DATABASE_PORT\" --username=medusa --dbname=medusa --no-owner --no-privileges \\
    --clean --if-exists --file=\"$BACKUP_DIR/database.sql.partial\" \"$@\"
mv \"$BACKUP_DIR/database.sql.partial\" \"$BACKUP_DIR/database.sql\"
";

/// A restore's load, in the same image: the schema dropped and the dump read, in one transaction, so a load that
/// fails leaves the database as it was.
pub const LOAD: &str = "set -eu
psql --host=\"$DATABASE_HOST\" --port=\"$DATABASE_PORT\" --username=medusa --dbname=medusa \\
    --no-psqlrc --quiet -v ON_ERROR_STOP=1 --single-transaction \\
    -c 'DROP SCHEMA IF EXISTS public CASCADE' -c 'CREATE SCHEMA public' -f \"$RESTORE_DIR/data/database.sql\"
";

/// What the dump reads.
pub fn dump_env() -> Vec<k8s_openapi::api::core::v1::EnvVar> {
    vec![
        env("DATABASE_HOST", POSTGRES),
        env("DATABASE_PORT", PORT.to_string()),
        secret_env("PGPASSWORD", POSTGRES_PASSWORD),
    ]
}

pub fn service(id: &str) -> Service {
    database_service(id, POSTGRES, "postgres", PORT)
}

pub fn stateful_set(id: &str, settings: &Settings) -> StatefulSet {
    // Ready means it takes connections to the store's database over TCP, as the backend makes them.
    let ready = format!("exec pg_isready -h 127.0.0.1 -p {PORT} -U {DATABASE_USER} -d {DATABASE}");
    let container = Container {
        name: POSTGRES.to_owned(),
        image: Some(settings.medusa.postgres_image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        env: Some(vec![
            env("POSTGRES_USER", DATABASE_USER),
            env("POSTGRES_DB", DATABASE),
            secret_env("POSTGRES_PASSWORD", POSTGRES_PASSWORD),
            env("PGDATA", format!("{DATA}/pgdata")),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        // Asked every second while it starts (up to 3 minutes: a first start runs initdb), then every 5 s; with
        // the startup probe passed, a kubelet asks readiness at once (Kubernetes 1.22 and later).
        startup_probe: Some(exec_probe(&ready, 0, 1, 180)),
        readiness_probe: Some(exec_probe(&ready, 0, 5, 3)),
        liveness_probe: Some(exec_probe(&ready, 0, 20, 6)),
        resources: Some(POSTGRES_SIZE.requirements()),
        security_context: Some(container_security()),
        ..Container::default()
    };
    single_stateful_set(
        id,
        POSTGRES,
        container,
        DATABASE_UID,
        (DATA, &settings.medusa.postgres_storage),
        settings,
    )
}
