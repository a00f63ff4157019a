// Logs every order placed, one line per order: `order placed: <order id> (#<display id>)`. Subscribers run only
// where events are processed, in the worker (MEDUSA_WORKER_MODE=worker) reading Redis's event queue, so this line
// in the worker's log is also the proof that the server's events reach it.
const { ContainerRegistrationKeys } = require("@medusajs/framework/utils")

/** @param {import("@medusajs/framework").SubscriberArgs<{ id: string }>} args */
async function orderPlaced({ event, container }) {
  const logger = container.resolve(ContainerRegistrationKeys.LOGGER)
  const query = container.resolve(ContainerRegistrationKeys.QUERY)
  const {
    data: [order],
  } = await query.graph({ entity: "order", fields: ["id", "display_id"], filters: { id: event.data.id } })
  logger.info(`order placed: ${event.data.id} (#${order?.display_id ?? "?"})`)
}

exports.default = orderPlaced

/** @type {import("@medusajs/framework").SubscriberConfig} */
exports.config = { event: "order.placed" }
