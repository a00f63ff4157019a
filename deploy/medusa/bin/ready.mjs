#!/usr/bin/env node
// The worker's startup probe (`entrypoint.sh ready`): exits 0 if Medusa in this container answers on its port
// (`/health` on PORT, default 9000) and the store's PostgreSQL (DATABASE_URL) and Redis (REDIS_URL) both answer,
// else prints what failed and exits 1. The same database checks as the server's /store-platform/ready route
// (src/lib/readiness.js, as built into .medusa/server).
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

async function medusa() {
  const response = await fetch(`http://127.0.0.1:${process.env.PORT || 9000}/health`)
  if (!response.ok) throw new Error(`Medusa's /health answered ${response.status}`)
}

const result = await backendReadiness(postgres, { medusa })
if (!result.ready) {
  process.stderr.write(`not ready: ${JSON.stringify(result.checks)}\n`)
  process.exit(1)
}
process.exit(0)
