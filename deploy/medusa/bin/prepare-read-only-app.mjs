#!/usr/bin/env node
// Run after `medusa build` (`npm run build`). `medusa db:migrate` makes sure every module package has a
// `dist/migrations` directory, creating the missing ones inside node_modules; in the image node_modules belongs to
// root and the pods run as uid 1000, so the bootstrap failed with "EACCES: permission denied, mkdir
// '/opt/medusa/node_modules/@medusajs/locking/dist/migrations'". Creating them (empty) at build time leaves the
// application read-only at run time.
import { existsSync, mkdirSync, readdirSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const scope = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "node_modules", "@medusajs")
let created = 0
for (const name of readdirSync(scope)) {
  const dist = path.join(scope, name, "dist")
  const migrations = path.join(dist, "migrations")
  if (existsSync(dist) && !existsSync(migrations)) {
    mkdirSync(migrations)
    created += 1
  }
}
process.stderr.write(`prepare-migrations-dirs: created ${created} empty dist/migrations under node_modules/@medusajs\n`)
