// What "ready" means for the backend's processes: PostgreSQL and Redis both answer, each within a short deadline.
// Used by the server's readiness route (src/api/store-platform/ready) and by `entrypoint.sh ready`, the worker's
// readiness probe (the worker serves no routes of its own, only Medusa's static /health).
const net = require("node:net")

const DEADLINE_MS = 2000

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {string} what
 * @returns {Promise<T>}
 */
function within(promise, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${DEADLINE_MS} ms`)), DEADLINE_MS)
  })
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout])).finally(() => clearTimeout(timer))
}

/** @param {string[]} words */
function command(words) {
  return `*${words.length}\r\n` + words.map((word) => `$${Buffer.byteLength(word)}\r\n${word}\r\n`).join("")
}

/**
 * PING over a connection of its own (the modules' shared clients would queue the command while Redis is away
 * instead of failing it), authenticating first if REDIS_URL carries a password.
 * @param {string} redisUrl
 * @returns {Promise<void>}
 */
function pingRedis(redisUrl) {
  const url = new URL(redisUrl)
  /** @type {string[]} */
  const requests = []
  if (url.password) {
    const user = decodeURIComponent(url.username)
    const password = decodeURIComponent(url.password)
    requests.push(command(user ? ["AUTH", user, password] : ["AUTH", password]))
  }
  requests.push(command(["PING"]))
  const expected = requests.length === 2 ? "+OK\r\n+PONG\r\n" : "+PONG\r\n"
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname || "localhost", port: Number(url.port || 6379) })
    let answer = ""
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(requests.join("")))
    socket.on("data", (chunk) => {
      answer += chunk
      if (answer.startsWith("-")) {
        socket.destroy()
        reject(new Error(`Redis answered ${answer.split("\r\n")[0]}`))
      } else if (answer.length >= expected.length) {
        socket.destroy()
        if (answer.startsWith(expected)) resolve()
        else reject(new Error("Redis gave an unexpected answer to PING"))
      }
    })
    socket.on("error", (error) => reject(new Error(`Redis: ${error.message}`)))
    socket.on("close", () => reject(new Error("Redis closed the connection")))
  })
}

/**
 * Runs every check at once; a check passes if it resolves.
 * @param {Record<string, () => Promise<unknown>>} checks
 * @returns {Promise<{ ready: boolean, checks: Record<string, string> }>}
 */
async function readiness(checks) {
  /** @type {Record<string, string>} */
  const results = {}
  await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        await within(check(), name)
        results[name] = "ok"
      } catch (error) {
        results[name] = error instanceof Error ? error.message : String(error)
      }
    }),
  )
  return { ready: Object.values(results).every((result) => result === "ok"), checks: results }
}

/**
 * The two checks, given how to ask PostgreSQL, and any others.
 * @param {() => Promise<unknown>} postgres
 * @param {Record<string, () => Promise<unknown>>} [others]
 */
function backendReadiness(postgres, others = {}) {
  return readiness({
    ...others,
    postgres,
    redis: () => {
      const url = process.env.REDIS_URL
      return url ? pingRedis(url) : Promise.reject(new Error("REDIS_URL is not set"))
    },
  })
}

module.exports = { backendReadiness, pingRedis }
