// Where the built application is, for the scripts in bin/: MEDUSA_APP_DIR if set, else the first of
// ../.medusa/server (next to these scripts), the working directory and the project root that holds a
// medusa-config.js.
import { existsSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

export function appDir() {
  if (process.env.MEDUSA_APP_DIR) return path.resolve(process.env.MEDUSA_APP_DIR)
  const candidates = [path.resolve(here, "..", ".medusa", "server"), process.cwd(), path.resolve(here, "..")]
  return candidates.find((dir) => existsSync(path.join(dir, "medusa-config.js"))) ?? candidates[0]
}
