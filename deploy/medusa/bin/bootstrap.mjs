#!/usr/bin/env node
// The store's bootstrap, run by its Kubernetes Job before (and on every upgrade of) the Medusa server and worker.
// Plain JavaScript, no build step. In order:
//
//   1. waits for PostgreSQL (DATABASE_URL), then takes a session advisory lock on that database, held until the
//      end, so two bootstraps of one store never run at once (the second waits, then finds nothing to do);
//   2. `medusa db:migrate --execute-safe-links --execute-safe-search` (migrations, link tables, search indexes;
//      never an unsafe drop, never a prompt);
//   3. for a clone (CLONED_FROM_FILE_URL set), the uploaded files' URLs moved from the store it was made from to
//      MEDUSA_FILE_URL, in every text column named `url` or `thumbnail` (images, thumbnails, line items');
//   4. `medusa exec ./src/scripts/ensure-admin.js`: the admin user from ADMIN_EMAIL / ADMIN_PASSWORD, unless it
//      exists (the password goes through the environment, never argv);
//   5. `medusa exec ./src/scripts/seed.js`: region, shipping, sample product, publishable key (printed as
//      `publishable-key: pk_...`, and written to PUBLISHABLE_KEY_FILE if set).
//
// Every step is idempotent, so running the whole bootstrap twice succeeds and the second run changes nothing.
// A failing step makes this exit non-zero after Medusa's own output, passed through, and a last line
// `bootstrap: failed: medusa <command> failed (exit code N): <Medusa's last error line>`.
//
// The Medusa commands run in the built application, `.medusa/server` (where `medusa build` put medusa-config.js
// and the scripts; see app.mjs). NODE_ENV defaults to production.
//
// Optional: BOOTSTRAP_DB_WAIT_SECONDS (default 180) bounds the wait for PostgreSQL.
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"

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
      if (attempt === 1 || attempt % 10 === 0) log(`waiting for PostgreSQL (${error.message})`)
      await sleep(2000)
    }
  }
}

let child = null

/** A PostgreSQL identifier, quoted. */
function ident(name) {
  return `"${name.replaceAll('"', '""')}"`
}

// A clone's database is another store's, and the URLs Medusa keeps of uploaded files begin with that store's file
// address. They are moved to this store's, wherever Medusa keeps one (a text column named url or thumbnail). Each
// update is idempotent: a second run finds nothing left to move.
async function moveFileUrls(client) {
  const from = process.env.CLONED_FROM_FILE_URL
  const to = process.env.MEDUSA_FILE_URL
  if (!from || !to || from === to) return
  const { rows } = await client.query(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND column_name IN ('url', 'thumbnail')
        AND data_type IN ('text', 'character varying')
      ORDER BY table_name, column_name`,
  )
  let moved = 0
  for (const { table_name: table, column_name: column } of rows) {
    const result = await client.query(
      `UPDATE ${ident(table)} SET ${ident(column)} = $2 || substr(${ident(column)}, length($1) + 1)
        WHERE left(${ident(column)}, length($1)) = $1`,
      [`${from}/`, `${to}/`],
    )
    moved += result.rowCount
  }
  log(`moved ${moved} uploaded file URL(s) from ${from} to ${to}`)
}

// Medusa's last words worth reporting: the last line of its output that names an error, else its last line.
// They end the bootstrap's own last line, which the store's failure reason quotes.
// In production Medusa logs JSON lines ({"level":"error","message":...}); their message is what counts.
function lastError(lines) {
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
  const line = (messages.findLast(({ error }) => error) ?? messages.at(-1))?.text ?? ""
  // The cause is usually at the end (PostgreSQL's words after the statement that failed).
  return line.length > 240 ? `…${line.slice(-240)}` : line
}

function medusa(cli, dir, args, env) {
  log(`medusa ${args.join(" ")}`)
  return new Promise((resolve, reject) => {
    child = spawn(process.execPath, [cli, ...args], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] })
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
      reject(new Error(`medusa ${args[0]} failed (${how})${why ? `: ${why}` : ""}`))
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
  const cli = require.resolve("@medusajs/cli/cli.js")
  const pg = require("pg")

  const env = { ...process.env, NODE_ENV: process.env.NODE_ENV || "production" }
  // Only the admin step needs the password.
  const { ADMIN_PASSWORD: _password, ...envWithoutPassword } = env

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
    await medusa(cli, dir, ["db:migrate", "--execute-safe-links", "--execute-safe-search"], envWithoutPassword)
    log(`migrations done in ${((Date.now() - started) / 1000).toFixed(1)}s`)
    await moveFileUrls(client)
    await medusa(cli, dir, ["exec", "./src/scripts/ensure-admin.js"], env)
    await medusa(cli, dir, ["exec", "./src/scripts/seed.js"], envWithoutPassword)

    await client.query("SELECT pg_advisory_unlock($1::bigint)", [LOCK_KEY])
  } finally {
    await client.end().catch(() => {})
  }
  log("done")
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    log(`${signal}: stopping`)
    if (child) child.kill(signal)
    process.exit(1)
  })
}

main().catch((error) => {
  log(`failed: ${error.message}`)
  process.exit(1)
})
