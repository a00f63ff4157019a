// GET /store-platform/ready: the server's readiness probe. Medusa's own `/health` answers "OK" as soon as the HTTP
// server listens, whether or not PostgreSQL and Redis can be reached; this answers 200 only if both answer, else
// 503 naming what failed. It sits outside /store, /admin and /auth, so none of Medusa's authentication or CORS
// middleware applies.
const { ContainerRegistrationKeys } = require("@medusajs/framework/utils")
const { backendReadiness } = require("../../../lib/readiness")

/**
 * @param {import("@medusajs/framework/http").MedusaRequest} req
 * @param {import("@medusajs/framework/http").MedusaResponse} res
 */
async function GET(req, res) {
  const pg = req.scope.resolve(ContainerRegistrationKeys.PG_CONNECTION)
  const result = await backendReadiness(() => pg.raw("select 1"))
  res.status(result.ready ? 200 : 503).json(result)
}

module.exports = { GET }
