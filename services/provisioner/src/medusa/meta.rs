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
/// The ports each component listens on.
pub const POSTGRES_PORT: i32 = 5432;
pub const REDIS_PORT: i32 = 6379;
/// Medusa's own port, on the server and the worker.
pub const SERVER_PORT: i32 = 9000;
/// The storefront's Node server.
pub const STOREFRONT_PORT: i32 = 8080;
/// uid and gid of `postgres` and `redis` in their official Debian-based images.
pub const DATABASE_UID: i64 = 999;
/// uid and gid of `node` in the backend and storefront images.
pub const NODE_UID: i64 = 1000;
/// Where the backend image keeps the application (node_modules, bin/, and `medusa build`'s .medusa/server), and
/// its entrypoint (deploy/docker/medusa/Dockerfile).
pub const APP_DIR: &str = "/opt/medusa";
pub const ENTRYPOINT: &str = "/opt/medusa/bin/entrypoint.sh";
/// The volume claim of the store's uploaded files, and where the server and the worker mount it: `static` in the
/// application's working directory, the one directory Medusa's local file provider writes to and its server serves
/// at `/static` (deploy/medusa/medusa-config.js).
pub const UPLOADS: &str = "medusa-uploads";
pub const UPLOADS_DIR: &str = "/opt/medusa/.medusa/server/static";
/// The path the uploaded files are served at, on the store's own host.
pub const UPLOADS_PATH: &str = "/static";
