#!/usr/bin/env node
// The store's bootstrap, run by its Kubernetes Job before (and on every upgrade of) the Medusa server and worker.
// Plain JavaScript, no build step. In order:
//
//   1. waits for PostgreSQL (DATABASE_URL), then takes a session advisory lock on that database, held until the
//      end, so two bootstraps of one store never run at once (the second waits, then finds nothing to do). The Job
//      starts with the databases, so it asks often;
//   2. looks for nothing to do: if this very build of the application (its lockfile, configuration and code, see
//      buildId) finished a bootstrap of this database, and the admin user and the storefront's publishable key are
//      in place, it reports the key and stops, without loading Medusa (a Job run again, a check after a restore
//      or a resume). A newer build, a restored database from another build, a clone, a password reset, a missing
//      admin or key: the whole bootstrap runs;
//   3. waits for Redis (REDIS_URL) to answer PING, which Medusa's modules need as they load;
//   4. bin/bootstrap-medusa.cjs, one process: Medusa's migrations (as `medusa db:migrate --execute-safe-links
//      --execute-safe-search`), a clone's file URLs moved, then in the application loaded once, Medusa's pending
//      migration scripts, ./src/scripts/ensure-admin.js (the admin user from ADMIN_EMAIL / ADMIN_PASSWORD, unless
//      it exists; the password goes through the environment, never argv) and ./src/scripts/seed.js (region,
//      shipping, sample product, publishable key, printed as `publishable-key: pk_...` and written to
//      PUBLISHABLE_KEY_FILE if set);
//   5. records the build that finished, in the table store_platform_bootstrap of the store's database (so it
//      travels with the data into backups, restores and clones).
//
// Every step is idempotent, so running the whole bootstrap twice succeeds and the second run changes nothing.
// A failing step makes this exit non-zero after Medusa's own output, passed through, and a last line
// `bootstrap: failed: medusa bootstrap failed (exit code N): <Medusa's last error line>`.
//
// Medusa runs in the built application, `.medusa/server` (where `medusa build` put medusa-config.js and the
// scripts; see app.mjs). NODE_ENV defaults to production.
//
// Optional: BOOTSTRAP_DB_WAIT_SECONDS (default 180) bounds the wait for PostgreSQL, and then for Redis.
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"

import { appDir } from "./app.mjs"

// Any fixed 64-bit key works: the lock is per database, and each store has its own database.
const LOCK_KEY = "7242391700513952"

function log(message) {
  process.stderr.write(`bootstrap: ${message}\n`)
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function connect(pg, url, deadline) {
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({ connectionString: url, ssl: false, keepAlive: true })
    try {
      await client.connect()
      return client
    } catch (error) {
      await client.end().catch(() => {})
      // Wrong credentials (28xxx) or no such database (3D000) will not heal by waiting.
      const fatal = typeof error.code === "string" && (error.code.startsWith("28") || error.code === "3D000")
      if (fatal) throw new Error(`PostgreSQL refused the connection: ${error.message}`)
      if (Date.now() >= deadline) throw new Error(`PostgreSQL is not reachable: ${error.message}`)
      if (attempt === 1 || attempt % 40 === 0) log(`waiting for PostgreSQL (${error.message})`)
      await sleep(500)
    }
  }
}

// Redis answering PING (with the password REDIS_URL carries), asked as the backend's readiness asks it.
async function waitForRedis(dir, url, deadline) {
  const require = createRequire(path.join(dir, "package.json"))
  const { pingRedis } = require("./src/lib/readiness.js")
  for (let attempt = 1; ; attempt++) {
    let timer
    try {
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer within 2 s")), 2000)
      })
      return await Promise.race([pingRedis(url), timeout])
    } catch (error) {
      if (Date.now() >= deadline) throw new Error(`Redis is not reachable: ${error.message}`)
      if (attempt === 1 || attempt % 40 === 0) log(`waiting for Redis (${error.message})`)
      await sleep(500)
    } finally {
      clearTimeout(timer)
    }
  }
}

let child = null

const here = path.dirname(fileURLToPath(import.meta.url))

// The table that records which build of the application last finished a bootstrap of this database.
const MARKER = "store_platform_bootstrap"

// This build of the application, as far as the database is concerned: the lockfile (every package's version,
// Medusa's modules and their migrations among them), the configuration, our code built into .medusa/server
// (modules, links, scripts, workflows) and these bootstrap scripts. Not the admin dashboard's bundle.
function buildId(dir) {
  const hash = createHash("sha256")
  const add = (file, name) => {
    const bytes = readFileSync(file)
    hash.update(`${name}\0${bytes.length}\0`)
    hash.update(bytes)
  }
  for (const name of ["package.json", "package-lock.json", "medusa-config.js"]) {
    const file = path.join(dir, name)
    if (existsSync(file)) add(file, name)
  }
  const walk = (base, prefix) => {
    if (!existsSync(base)) return
    const entries = readdirSync(base, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))
    for (const entry of entries) {
      const full = path.join(base, entry.name)
      if (entry.isDirectory()) walk(full, `${prefix}${entry.name}/`)
      else if (entry.isFile()) add(full, `${prefix}${entry.name}`)
    }
  }
  walk(path.join(dir, "src"), "src/")
  walk(here, "bin/")
  return hash.digest("hex")
}

// Nothing to do, read without loading Medusa: this build finished a bootstrap of this database, the admin can sign
// in (a user with its email/password identity, linked), and the first unrevoked publishable key, which the seed
// would hand over, is linked to the store's default sales channel. Returns that key, or why the bootstrap runs.
async function nothingToDo(client, build) {
  if (process.env.ADMIN_PASSWORD_RESET === "true") return { why: "the admin's password is to be set" }
  const from = process.env.CLONED_FROM_FILE_URL
  if (from && from !== process.env.MEDUSA_FILE_URL) return { why: "a clone's file URLs may need moving" }
  try {
    const { rows: marks } = await client.query(`SELECT build, done_at FROM ${MARKER} WHERE id = 1`)
    if (!marks.length) return { why: "no bootstrap has finished here" }
    if (marks[0].build !== build) return { why: "a bootstrap of another build finished here" }
    const { rows: admins } = await client.query(
      `SELECT 1 FROM "user" u
         JOIN provider_identity p ON p.entity_id = u.email AND p.provider = 'emailpass' AND p.deleted_at IS NULL
         JOIN auth_identity a ON a.id = p.auth_identity_id AND a.deleted_at IS NULL
        WHERE u.email = $1 AND u.deleted_at IS NULL AND a.app_metadata ->> 'user_id' = u.id`,
      [process.env.ADMIN_EMAIL.trim().toLowerCase()],
    )
    if (!admins.length) return { why: "the admin user is missing" }
    const { rows: keys } = await client.query(
      `SELECT k.token, EXISTS (
                SELECT 1 FROM publishable_api_key_sales_channel l JOIN store s
                    ON s.default_sales_channel_id = l.sales_channel_id AND s.deleted_at IS NULL
                 WHERE l.publishable_key_id = k.id AND l.deleted_at IS NULL) AS linked
         FROM api_key k
        WHERE k.type = 'publishable' AND k.revoked_at IS NULL AND k.deleted_at IS NULL
        ORDER BY k.created_at ASC LIMIT 1`,
    )
    if (!keys.length || !keys[0].linked) return { why: "the publishable key is missing or unlinked" }
    return { key: keys[0].token, since: marks[0].done_at }
  } catch (error) {
    // 42P01: no such table; a database no bootstrap of ours finished (a new store, or one from before the record).
    if (error.code === "42P01") return { why: "no bootstrap has finished here" }
    return { why: `the check could not tell (${error.message})` }
  }
}

async function recordBuild(client, build) {
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${MARKER} (
       id smallint PRIMARY KEY CHECK (id = 1), build text NOT NULL, done_at timestamptz NOT NULL)`,
  )
  await client.query(
    `INSERT INTO ${MARKER} (id, build, done_at) VALUES (1, $1, now())
       ON CONFLICT (id) DO UPDATE SET build = EXCLUDED.build, done_at = EXCLUDED.done_at`,
    [build],
  )
}

const CHILD_ERROR = "bootstrap: error: "

// Medusa's last words worth reporting: the last line of its output that names an error, else its last line.
// They end the bootstrap's own last line, which the store's failure reason quotes.
// bin/bootstrap-medusa.cjs ends a failure with `bootstrap: error: <message>`, which says it best; otherwise (it
// was killed, say) Medusa's own lines: in production JSON ({"level":"error","message":...}), whose message counts.
function lastError(lines) {
  const own = lines.findLast((line) => line.startsWith(CHILD_ERROR))
  if (own) return shorten(own.slice(CHILD_ERROR.length).replace(/\s+/g, " ").trim())
  const messages = lines
    .map((line) => {
      const text = line.replace(/\x1b\[[0-9;]*m/g, "").trim()
      try {
        const entry = JSON.parse(text)
        if (entry && typeof entry.message === "string") return { error: entry.level === "error", text: entry.message }
      } catch {}
      return { error: /error|denied|refused|cannot|failed|invalid/i.test(text), text }
    })
    .map(({ error, text }) => ({ error, text: text.replace(/\s+/g, " ").trim() }))
    .filter(({ text }) => text)
  return shorten((messages.findLast(({ error }) => error) ?? messages.at(-1))?.text ?? "")
}

// The cause is usually at the end (PostgreSQL's words after the statement that failed).
function shorten(line) {
  return line.length > 240 ? `…${line.slice(-240)}` : line
}

// bin/bootstrap-medusa.cjs, in the application's directory.
function bootstrapMedusa(dir, env) {
  return new Promise((resolve, reject) => {
    child = spawn(process.execPath, [path.join(here, "bootstrap-medusa.cjs")], {
      cwd: dir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    })
    // Passed through as it comes, and the last lines kept for the failure's reason.
    const recent = []
    let partial = ""
    const keep = (chunk) => {
      const lines = (partial + chunk.toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      recent.push(...lines)
      recent.splice(0, Math.max(0, recent.length - 50))
    }
    child.stdout.on("data", (chunk) => {
      process.stdout.write(chunk)
      keep(chunk)
    })
    child.stderr.on("data", (chunk) => {
      process.stderr.write(chunk)
      keep(chunk)
    })
    child.on("error", reject)
    child.on("close", (code, signal) => {
      child = null
      if (code === 0) return resolve()
      const how = signal ? `signal ${signal}` : `exit code ${code}`
      const why = lastError([...recent, partial])
      reject(new Error(`medusa bootstrap failed (${how})${why ? `: ${why}` : ""}`))
    })
  })
}

async function main() {
  const dir = appDir()
  if (!existsSync(path.join(dir, "medusa-config.js"))) {
    throw new Error(`${dir} holds no medusa-config.js: run \`medusa build\` and point MEDUSA_APP_DIR at .medusa/server`)
  }
  for (const script of ["ensure-admin.js", "seed.js"]) {
    if (!existsSync(path.join(dir, "src", "scripts", script))) throw new Error(`${dir}/src/scripts/${script} is missing`)
  }
  const url = process.env.DATABASE_URL
  if (!url) throw new Error("DATABASE_URL is not set")
  if (!process.env.ADMIN_EMAIL || !process.env.ADMIN_PASSWORD) throw new Error("ADMIN_EMAIL and ADMIN_PASSWORD must be set")

  const require = createRequire(path.join(dir, "package.json"))
  const pg = require("pg")
  const env = { ...process.env, NODE_ENV: process.env.NODE_ENV || "production" }
  const build = buildId(dir)

  const waitSeconds = Number(process.env.BOOTSTRAP_DB_WAIT_SECONDS || 180)
  const client = await connect(pg, url, Date.now() + waitSeconds * 1000)
  // If this connection drops, the lock is gone: stop rather than carry on unprotected.
  client.on("error", (error) => {
    log(`lost the PostgreSQL connection holding the lock: ${error.message}`)
    if (child) child.kill("SIGTERM")
    process.exit(1)
  })
  try {
    const { rows } = await client.query("SELECT pg_try_advisory_lock($1::bigint) AS locked", [LOCK_KEY])
    if (!rows[0].locked) {
      log("another bootstrap of this store is running; waiting for it to finish")
      await client.query("SELECT pg_advisory_lock($1::bigint)", [LOCK_KEY])
    }
    log("holding the bootstrap lock")

    const started = Date.now()
    const found = await nothingToDo(client, build)
    if (found.key) {
      log(`nothing to do: build ${build.slice(0, 12)} bootstrapped this store at ${found.since.toISOString()}`)
      if (process.env.PUBLISHABLE_KEY_FILE) writeFileSync(process.env.PUBLISHABLE_KEY_FILE, found.key)
      process.stdout.write(`publishable-key: ${found.key}\n`)
    } else {
      log(`bootstrapping build ${build.slice(0, 12)}: ${found.why}`)
      if (process.env.REDIS_URL) await waitForRedis(dir, process.env.REDIS_URL, Date.now() + waitSeconds * 1000)
      await bootstrapMedusa(dir, env)
      await recordBuild(client, build)
    }
    log(`done in ${((Date.now() - started) / 1000).toFixed(1)}s`)
    await client.query("SELECT pg_advisory_unlock($1::bigint)", [LOCK_KEY])
  } finally {
    await client.end().catch(() => {})
  }
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    log(`${signal}: stopping`)
    if (child) child.kill(signal)
    process.exit(1)
  })
}

main().then(
  () => process.exit(0),
  (error) => {
    log(`failed: ${error.message}`)
    process.exit(1)
  },
)
