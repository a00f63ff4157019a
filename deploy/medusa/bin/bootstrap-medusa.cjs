#!/usr/bin/env node
// The Medusa part of the store's bootstrap, run by bin/bootstrap.mjs (which holds the store's lock) in the built
// application (.medusa/server, the working directory). One process does what three `medusa` commands did, each of
// which loaded the whole application first (`db:migrate` twice over: it forks `db:migrate:scripts`):
//
//   1. Medusa's migrations as `medusa db:migrate --execute-safe-links --execute-safe-search` runs them (its own
//      `migrate`: every module's migrations, the link tables, then the search indexes in a process of their own, as
//      db:migrate forks it: they need an application loaded, and a second one in this process would find the first
//      one's Redis connections closed); never an unsafe drop, never a prompt;
//   2. for a clone (CLONED_FROM_FILE_URL set), the uploaded files' URLs moved from the store it was made from to
//      MEDUSA_FILE_URL, in every text column named `url` or `thumbnail` (images, thumbnails, line items');
//   3. the application loaded once, as `medusa exec` loads it (its defaults made: the store, the sales channel);
//   4. Medusa's pending migration scripts, in that application (they run after its defaults in every store that
//      upgrades, so they do here too);
//   5. ./src/scripts/ensure-admin.js and ./src/scripts/seed.js, in that application.
//
// Every step is idempotent. Each begins with a line `bootstrap: <step>` on stderr; a failure ends with Medusa's
// own error (logged as Medusa logs) and exit code 1, which bin/bootstrap.mjs turns into its last line.
"use strict"

const path = require("node:path")

const STEP_PREFIX = "bootstrap:"

/** @param {string} message */
function log(message) {
  process.stderr.write(`${STEP_PREFIX} ${message}\n`)
}

/** A PostgreSQL identifier, quoted. @param {string} name */
function ident(name) {
  return `"${name.replaceAll('"', '""')}"`
}

// A clone's database is another store's, and the URLs Medusa keeps of uploaded files begin with that store's file
// address. They are moved to this store's, wherever Medusa keeps one (a text column named url or thumbnail). Each
// update is idempotent: a second run finds nothing left to move.
/** @param {import("knex").Knex} knex */
async function moveFileUrls(knex) {
  const from = process.env.CLONED_FROM_FILE_URL
  const to = process.env.MEDUSA_FILE_URL
  if (!from || !to || from === to) return
  const { rows } = await knex.raw(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND column_name IN ('url', 'thumbnail')
        AND data_type IN ('text', 'character varying')
      ORDER BY table_name, column_name`,
  )
  let moved = 0
  for (const { table_name: table, column_name: column } of rows) {
    const result = await knex.raw(
      `UPDATE ${ident(table)} SET ${ident(column)} = ?::text || substr(${ident(column)}, length(?::text) + 1)
        WHERE left(${ident(column)}, length(?::text)) = ?::text`,
      [`${to}/`, `${from}/`, `${from}/`, `${from}/`],
    )
    moved += result.rowCount
  }
  log(`moved ${moved} uploaded file URL(s) from ${from} to ${to}`)
}

/** Seconds since `started`, for the log. @param {number} started */
function since(started) {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`
}

async function main() {
  const directory = process.cwd()
  // The password reaches only the step that needs it.
  const adminPassword = process.env.ADMIN_PASSWORD
  delete process.env.ADMIN_PASSWORD
  // As Medusa's own commands run: no worker, no jobs.
  process.env.MEDUSA_WORKER_MODE = "server"

  const loaders = require("@medusajs/medusa/loaders/index")
  const { migrate } = require("@medusajs/medusa/commands/db/migrate")
  const { MedusaModule } = require("@medusajs/framework/modules-sdk")
  const { MigrationScriptsMigrator } = require("@medusajs/framework/migrations")
  const { ContainerRegistrationKeys, getResolvedPlugins } = require("@medusajs/framework/utils")
  const express = require("express")

  let started = Date.now()
  log("migrations (as medusa db:migrate --execute-safe-links --execute-safe-search)")
  const migrationContainer = await loaders.initializeContainer(directory)
  const logger = migrationContainer.resolve(ContainerRegistrationKeys.LOGGER)
  const migrated = await migrate({
    directory,
    skipScripts: true,
    executeSafeLinks: true,
    executeSafeSearch: true,
    logger,
    container: migrationContainer,
  })
  if (!migrated) throw new Error("the search indexes could not be migrated (medusa db:migrate:search failed)")
  log(`migrations done in ${since(started)}`)

  await moveFileUrls(migrationContainer.resolve(ContainerRegistrationKeys.PG_CONNECTION))

  started = Date.now()
  log("loading the application")
  // The migrations loaded the modules to plan them; the application loads them afresh, as db:migrate:scripts does.
  MedusaModule.clearInstances()
  const { container } = await loaders.default({ directory, expressApp: express(), skipLoadingEntryPoints: true })
  log(`application loaded in ${since(started)}`)

  const configModule = container.resolve(ContainerRegistrationKeys.CONFIG_MODULE)
  const plugins = await getResolvedPlugins(directory, configModule, true)
  const scriptPaths = [
    path.join(path.dirname(require.resolve("@medusajs/medusa")), "migration-scripts"),
    ...plugins.map((plugin) => path.join(plugin.resolve, "migration-scripts")),
  ]
  const scripts = new MigrationScriptsMigrator({ container })
  await scripts.ensureMigrationsTable()
  const pending = await scripts.getPendingMigrations(scriptPaths)
  if (pending?.length) {
    log(`migration scripts: ${pending.map((file) => path.basename(file)).join(", ")}`)
    await scripts.run(scriptPaths)
  }

  const script = (name) => require(path.join(directory, "src", "scripts", name)).default
  log("admin user (ensure-admin.js)")
  process.env.ADMIN_PASSWORD = adminPassword
  try {
    await script("ensure-admin.js")({ container, args: [] })
  } finally {
    delete process.env.ADMIN_PASSWORD
  }
  log("store data and publishable key (seed.js)")
  await script("seed.js")({ container, args: [] })
}

main().then(
  () => process.exit(0),
  (error) => {
    // Medusa's logger writes what its commands would have; the last line names the error for bin/bootstrap.mjs.
    process.stderr.write(`${error?.stack ?? error}\n`)
    process.stderr.write(`${STEP_PREFIX} error: ${error?.message ?? error}\n`)
    process.exit(1)
  },
)
