#!/usr/bin/env node
// The worker's readiness probe (`entrypoint.sh ready`): exits 0 if the store's PostgreSQL (DATABASE_URL) and
// Redis (REDIS_URL) both answer, else prints what failed and exits 1. The same checks as the server's
// /store-platform/ready route (src/lib/readiness.js, as built into .medusa/server).
import { createRequire } from "node:module"
import path from "node:path"

import { appDir } from "./app.mjs"

const require = createRequire(path.join(appDir(), "package.json"))
const pg = require("pg")
const { backendReadiness } = require("./src/lib/readiness.js")

async function postgres() {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL, ssl: false })
  client.on("error", () => {})
  try {
    await client.connect()
    await client.query("select 1")
  } finally {
    client.end().catch(() => {})
  }
}

const result = await backendReadiness(postgres)
if (!result.ready) {
  process.stderr.write(`not ready: ${JSON.stringify(result.checks)}\n`)
  process.exit(1)
}
process.exit(0)
