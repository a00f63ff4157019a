// Medusa v2 configuration for one store (plain CommonJS: `medusa build` copies it to .medusa/server, and no
// TypeScript loader is needed to read it). Everything comes from the environment the provisioner sets on the pod:
//
//   DATABASE_URL          postgres://user:password@host:5432/db (the store's own PostgreSQL, no TLS)
//   REDIS_URL             redis://host:6379 (sessions, event bus, workflow engine, locking, cache)
//   JWT_SECRET            signs admin/customer tokens (required when NODE_ENV=production)
//   COOKIE_SECRET         signs the session cookie (required when NODE_ENV=production)
//   STORE_CORS, ADMIN_CORS, AUTH_CORS   comma-separated origins, e.g. http://shop1.localhost
//   MEDUSA_WORKER_MODE    shared | server | worker (read by Medusa itself; server and worker need REDIS_URL)
//   DISABLE_MEDUSA_ADMIN  "true" to skip serving the admin dashboard (the worker sets it)
//   MEDUSA_BACKEND_URL    the URL the admin dashboard calls; baked into the admin bundle by `medusa build`, so
//                         leave it unset there: the default "/" makes the dashboard call its own origin, which
//                         lets one image serve every store at any host name
//   COOKIE_SECURE         "auto" (default), "true" or "false"; see cookieOptions below
//   MEDUSA_FILE_URL       the public address of the store's uploaded files, e.g. http://shop1.localhost/static
//                         (required in production; see the file module below)
//
// This file reads nothing else (Medusa itself also reads NODE_ENV; its CLI loads a .env from the working
// directory if one exists, and none is needed).
const { defineConfig } = require("@medusajs/framework/utils")

const env = process.env

const workerMode = /** @type {"shared" | "server" | "worker"} */ (env.MEDUSA_WORKER_MODE || "shared")
if (!["shared", "server", "worker"].includes(workerMode)) {
  throw new Error(`MEDUSA_WORKER_MODE must be shared, server or worker, not "${workerMode}"`)
}

const redisUrl = env.REDIS_URL || undefined
if (!redisUrl && workerMode !== "shared" && env.NODE_ENV === "production") {
  // A split server/worker pair only works when both talk through Redis: with the in-memory event bus the
  // worker would never see the server's events. (`medusa exec`, `db:migrate` and `user` run as "server", so
  // the bootstrap Job needs REDIS_URL too.)
  throw new Error(`MEDUSA_WORKER_MODE=${workerMode} needs REDIS_URL in production`)
}

// The session cookie the admin dashboard signs in with. Medusa makes it `Secure` whenever NODE_ENV=production,
// and express-session silently drops a Secure cookie on a plain-http request, so the dashboard could never sign
// in at http://<store>.localhost. "auto" lets express-session decide per request from req.secure: Medusa sets
// `trust proxy` to 1, so behind an ingress that sends `X-Forwarded-Proto: https` the cookie is Secure, and on
// plain http it is not. "true"/"false" force it either way.
const cookieSecure = (env.COOKIE_SECURE || "auto").toLowerCase()
if (!["auto", "true", "false"].includes(cookieSecure)) {
  throw new Error(`COOKIE_SECURE must be auto, true or false, not "${env.COOKIE_SECURE}"`)
}

// Uploaded files (product images, CSV imports and exports) go through Medusa's local file provider into
// `static` under the working directory (.medusa/server), which is the one directory Medusa's server serves at
// /static. In the image the application is read-only and belongs to root, so the store mounts its own volume
// there (the PVC medusa-uploads, on the server and the worker): the files outlive pods, and the store's Ingress
// routes /static to the server. The URLs Medusa stores for them are built on MEDUSA_FILE_URL, the store's own
// address; Medusa's default, http://localhost:9000/static, reaches nothing outside the pod.
const fileUrl = env.MEDUSA_FILE_URL || (env.NODE_ENV === "production" ? "" : "http://localhost:9000/static")
if (!/^https?:\/\/[^/]+/.test(fileUrl)) {
  throw new Error(
    `MEDUSA_FILE_URL must be the absolute http(s) address files are served at (e.g. http://shop1.localhost/static), not "${fileUrl}"`
  )
}
const fileModule = {
  resolve: "@medusajs/medusa/file",
  options: {
    providers: [{ resolve: "@medusajs/medusa/file-local", id: "local", options: { backend_url: fileUrl } }],
  },
}

// With REDIS_URL, every module that holds state across processes lives in Redis. Without it Medusa's in-memory
// defaults stay (fine for `medusa build` and a single shared process). `@medusajs/medusa/caching` (the newer
// caching module) is still behind the MEDUSA_FF_CACHING feature flag in 2.21, so the cache module is the classic
// one, backed by `cache-redis`.
const redisModules = redisUrl
  ? [
      { resolve: "@medusajs/medusa/cache-redis", options: { redisUrl } },
      { resolve: "@medusajs/medusa/event-bus-redis", options: { redisUrl } },
      { resolve: "@medusajs/medusa/workflow-engine-redis", options: { redis: { redisUrl } } },
      {
        resolve: "@medusajs/medusa/locking",
        options: {
          providers: [
            {
              resolve: "@medusajs/medusa/locking-redis",
              id: "locking-redis",
              is_default: true,
              options: { redisUrl },
            },
          ],
        },
      },
    ]
  : []

module.exports = defineConfig({
  projectConfig: {
    databaseUrl: env.DATABASE_URL,
    // The store's PostgreSQL runs next to it in the namespace without TLS. Medusa's modules default to TLS
    // (rejectUnauthorized: false) for any host other than localhost, so turn it off explicitly.
    databaseDriverOptions: { connection: { ssl: false } },
    redisUrl,
    workerMode,
    http: {
      storeCors: env.STORE_CORS || "",
      adminCors: env.ADMIN_CORS || "",
      authCors: env.AUTH_CORS || "",
      // Left undefined when unset: Medusa then refuses to start in production instead of signing with a
      // well-known default.
      jwtSecret: env.JWT_SECRET,
      cookieSecret: env.COOKIE_SECRET,
    },
    // express-session takes secure: "auto"; Medusa's type only says boolean.
    cookieOptions: {
      secure: /** @type {boolean} */ (cookieSecure === "auto" ? "auto" : cookieSecure === "true"),
    },
  },
  admin: {
    disable: env.DISABLE_MEDUSA_ADMIN === "true",
    path: "/app",
    backendUrl: env.MEDUSA_BACKEND_URL || "/",
  },
  modules: [fileModule, ...redisModules],
})
