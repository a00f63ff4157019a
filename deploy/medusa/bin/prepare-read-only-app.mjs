#!/usr/bin/env node
// Run after `medusa build` (`npm run build`): makes what Medusa would otherwise create at run time, because in the
// image the application belongs to root and the pods run as uid 1000, so nothing under it can be created then.
//
//   - `medusa db:migrate` makes sure every module package has a `dist/migrations` directory, creating the missing
//     ones inside node_modules: the bootstrap failed with "EACCES: permission denied, mkdir
//     '/opt/medusa/node_modules/@medusajs/locking/dist/migrations'". They are created here, empty.
//   - `.medusa/server/static`, where uploaded files go (medusa-config.js): the store's uploads volume is mounted
//     there, and the directory is its mount point. Without the volume, an upload fails as it should (EACCES), not
//     into the image.
import { existsSync, mkdirSync, readdirSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const scope = path.join(root, "node_modules", "@medusajs")
let created = 0
for (const name of readdirSync(scope)) {
  const dist = path.join(scope, name, "dist")
  const migrations = path.join(dist, "migrations")
  if (existsSync(dist) && !existsSync(migrations)) {
    mkdirSync(migrations)
    created += 1
  }
}
mkdirSync(path.join(root, ".medusa", "server", "static"), { recursive: true })
process.stderr.write(
  `prepare-read-only-app: created ${created} empty dist/migrations under node_modules/@medusajs, and .medusa/server/static\n`
)
