//! Names of a Medusa store's objects, and the uids its images run as.

pub const POSTGRES: &str = "postgres";
pub const REDIS: &str = "redis";
/// The backend serving HTTP: the store API, the admin API and the admin dashboard at `/app`.
pub const SERVER: &str = "medusa-server";
/// The backend processing events, scheduled jobs and workflows.
pub const WORKER: &str = "medusa-worker";
pub const BOOTSTRAP: &str = "medusa-bootstrap";
pub const STOREFRONT: &str = "storefront";
/// The ConfigMap handing the storefront its publishable key, read back from the bootstrap Job.
pub const STOREFRONT_CONFIG: &str = "storefront-config";
/// uid and gid of `postgres` and `redis` in their official Debian-based images.
pub const DATABASE_UID: i64 = 999;
/// uid and gid of `node` in the backend and storefront images.
pub const NODE_UID: i64 = 1000;
/// Where the backend image keeps the application (node_modules, bin/, and `medusa build`'s .medusa/server), and
/// its entrypoint (deploy/docker/medusa/Dockerfile).
pub const APP_DIR: &str = "/opt/medusa";
pub const ENTRYPOINT: &str = "/opt/medusa/bin/entrypoint.sh";
