// Makes a product created in the admin (or imported from a CSV, or by the API) sellable the way a shop owner
// expects, instead of failing at the customer's cart:
//
//   - a product without a shipping profile gets the store's default one (type "default", which the seed's shipping
//     option serves). Without it, completing a cart fails with "The cart items require shipping profiles that are
//     not satisfied by the current shipping methods";
//   - every variant whose inventory Medusa manages gets a stock level (0 in stock) at the store's default stock
//     location, the one the seed links to the sales channel. Without it, adding the variant to a cart fails with
//     "Variant ... does not have any inventory associated with the stock location ...". The owner then enters how
//     many are in stock (the product's variant, "Inventory", the location's quantity), or turns "Manage inventory"
//     off for a variant sold without a count.
//
// Both run as hooks of Medusa's own product workflows, in the same request, so the product is ready to sell when
// the admin's "Publish" returns. What the owner chose is kept: a product with a shipping profile keeps it, an
// inventory item with a level at the default location keeps its quantity. If the workflow fails after the hook,
// the compensation removes what the hook added.
const { ContainerRegistrationKeys, Modules } = require("@medusajs/framework/utils")
const { StepResponse } = require("@medusajs/framework/workflows-sdk")
const { createProductVariantsWorkflow, createProductsWorkflow } = require("@medusajs/medusa/core-flows")

const SHIPPING_PROFILE_TYPE = "default"

/**
 * @typedef {{ profileLinks: { product_id: string, shipping_profile_id: string }[], levelIds: string[] }} Added
 */

/**
 * Adds the default shipping profile and default-location stock levels the given products and variants lack.
 *
 * @param {import("@medusajs/framework/types").MedusaContainer} container
 * @param {{ productIds: string[], variantIds: string[] }} created
 * @returns {Promise<Added>}
 */
async function makeSellable(container, { productIds, variantIds }) {
  const query = container.resolve(ContainerRegistrationKeys.QUERY)
  const link = container.resolve(ContainerRegistrationKeys.LINK)
  const logger = container.resolve(ContainerRegistrationKeys.LOGGER)
  /** @type {Added} */
  const added = { profileLinks: [], levelIds: [] }

  if (productIds.length) {
    const [profile] = await container
      .resolve(Modules.FULFILLMENT)
      .listShippingProfiles({ type: SHIPPING_PROFILE_TYPE }, { take: 1 })
    const { data: products } = await query.graph({
      entity: "product",
      fields: ["id", "shipping_profile.id"],
      filters: { id: productIds },
    })
    const without = products.filter((product) => !product.shipping_profile?.id).map((product) => product.id)
    if (profile && without.length) {
      added.profileLinks = without.map((product_id) => ({ product_id, shipping_profile_id: profile.id }))
      await link.create(
        added.profileLinks.map(({ product_id, shipping_profile_id }) => ({
          [Modules.PRODUCT]: { product_id },
          [Modules.FULFILLMENT]: { shipping_profile_id },
        }))
      )
      logger.info(`sellable products: shipping profile ${profile.id} for ${without.join(", ")}`)
    }
  }

  const [store] = await container.resolve(Modules.STORE).listStores({}, { take: 1 })
  const locationId = store?.default_location_id
  if (!locationId) return added
  const { data: variants } = await query.graph({
    entity: "product_variant",
    fields: ["id", "manage_inventory", "inventory_items.inventory_item_id"],
    filters: productIds.length ? { product_id: productIds } : { id: variantIds },
  })
  /** @type {string[]} */
  const itemIds = []
  for (const variant of variants.filter((v) => v.manage_inventory)) {
    for (const item of variant.inventory_items ?? []) {
      if (typeof item?.inventory_item_id === "string") itemIds.push(item.inventory_item_id)
    }
  }
  if (!itemIds.length) return added
  const inventory = container.resolve(Modules.INVENTORY)
  const stocked = new Set(
    (await inventory.listInventoryLevels({ inventory_item_id: itemIds, location_id: locationId })).map(
      (level) => level.inventory_item_id
    )
  )
  const missing = [...new Set(itemIds)].filter((id) => !stocked.has(id))
  if (missing.length) {
    const levels = await inventory.createInventoryLevels(
      missing.map((inventory_item_id) => ({ inventory_item_id, location_id: locationId, stocked_quantity: 0 }))
    )
    added.levelIds = levels.map((level) => level.id)
    logger.info(`sellable products: stock levels at ${locationId} for ${missing.join(", ")}`)
  }
  return added
}

/**
 * @param {Added | undefined} added
 * @param {{ container: import("@medusajs/framework/types").MedusaContainer }} context
 */
async function undo(added, { container }) {
  if (!added) return
  if (added.levelIds.length) await container.resolve(Modules.INVENTORY).deleteInventoryLevels(added.levelIds)
  if (added.profileLinks.length) {
    await container.resolve(ContainerRegistrationKeys.LINK).dismiss(
      added.profileLinks.map(({ product_id, shipping_profile_id }) => ({
        [Modules.PRODUCT]: { product_id },
        [Modules.FULFILLMENT]: { shipping_profile_id },
      }))
    )
  }
}

createProductsWorkflow.hooks.productsCreated(async ({ products }, { container }) => {
  const added = await makeSellable(container, { productIds: products.map((product) => product.id), variantIds: [] })
  return new StepResponse(added, added)
}, undo)

// Variants added to an existing product later (the product's "Add variant").
createProductVariantsWorkflow.hooks.productVariantsCreated(async ({ product_variants }, { container }) => {
  const added = await makeSellable(container, {
    productIds: [],
    variantIds: product_variants.map((variant) => variant.id),
  })
  return new StepResponse(added, added)
}, undo)
