// The store's starting data, run by `medusa exec ./src/scripts/seed.js` (from .medusa/server) after the
// migrations, on every bootstrap (so on every upgrade too):
//
//   - a region (countries and currency from the environment) with the system payment provider, prices that
//     include tax or not (from the environment), and a tax region per country with its default rate; the store's
//     default currency set to the region's;
//   - a stock location linked to the manual fulfillment provider and the default sales channel, with a shipping
//     fulfillment set, a service zone over the region's countries and a flat-rate shipping option;
//   - a published sample product with one variant, priced in the region's currency, in the sales channel, with
//     stock at the location;
//   - a publishable API key linked to the sales channel.
//
// Idempotent twice over. Each record is looked up (by name, handle, SKU or link) before it is created, so an
// interrupted run is completed by the next one. And once everything is in place the store is marked (metadata
// `store_platform_seeded_at`): later runs leave the store's data alone, so what the merchant deletes or changes in
// the admin (the sample product, the currency, the shipping option) does not come back on the next upgrade. Only
// the publishable key is always ensured (an unrevoked one, linked to the default sales channel), since the
// platform needs its token.
//
//   STORE_COUNTRY          comma-separated ISO 3166-1 alpha-2 codes of the region's countries (default "us")
//   STORE_CURRENCY         ISO 4217 code of the region's and the store's default currency (default "usd")
//   STORE_TAX_RATES        the default tax rate of each country, in percent: "de=19,fr=20" (every country of
//                          STORE_COUNTRY needs one; 0 means the country is not taxed)
//   STORE_PRICES_INCLUDE_TAX  "true" (default): prices are entered and shown with tax included, as EU shops must
//                          show them to consumers; "false": tax is added at checkout
//   PUBLISHABLE_KEY_FILE   if set, the publishable key's token is also written there (the bootstrap Job uses
//                          /dev/termination-log, so the provisioner can read it from the pod's status)
//
// Prints the token as one line `publishable-key: pk_...` on stdout.
const { writeFileSync } = require("node:fs")

const { ContainerRegistrationKeys, Modules, ProductStatus } = require("@medusajs/framework/utils")
const {
  createApiKeysWorkflow,
  createInventoryLevelsWorkflow,
  createProductsWorkflow,
  createRegionsWorkflow,
  createSalesChannelsWorkflow,
  createShippingOptionsWorkflow,
  createShippingProfilesWorkflow,
  createStockLocationsWorkflow,
  createTaxRatesWorkflow,
  createTaxRegionsWorkflow,
  linkSalesChannelsToApiKeyWorkflow,
  linkSalesChannelsToStockLocationWorkflow,
  updateStoresWorkflow,
} = require("@medusajs/medusa/core-flows")

const SEEDED_KEY = "store_platform_seeded_at"
const SALES_CHANNEL = "Default Sales Channel"
const REGION = "Default Region"
const LOCATION = "Main Warehouse"
const FULFILLMENT_SET = "Main Warehouse Shipping"
const SERVICE_ZONE = "Default Zone"
const SHIPPING_OPTION = "Standard Shipping"
const SHIPPING_PROFILE_TYPE = "default"
const PUBLISHABLE_KEY_TITLE = "Storefront"
const PRODUCT_HANDLE = "sample-t-shirt"
const PRODUCT_SKU = "SAMPLE-TSHIRT-ONE"
const FULFILLMENT_PROVIDER = "manual_manual"
const PAYMENT_PROVIDER = "pp_system_default"
const TAX_PROVIDER = "tp_system"
// The rate each country's tax region charges by default (the rate itself comes from STORE_TAX_RATES).
const TAX_RATE = { name: "Standard rate", code: "standard" }
// Medusa v2 amounts are in the currency's main unit: 20 is 20.00.
const PRODUCT_PRICE = 20
const SHIPPING_PRICE = 5
const STOCK = 1000

function settings() {
  const countries = (process.env.STORE_COUNTRY || "us")
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter(Boolean)
  const currency = (process.env.STORE_CURRENCY || "usd").trim().toLowerCase()
  if (!countries.length) throw new Error("STORE_COUNTRY names no country")
  for (const country of countries) {
    if (!/^[a-z]{2}$/.test(country)) throw new Error(`STORE_COUNTRY: "${country}" is not a two-letter country code`)
  }
  if (!/^[a-z]{3}$/.test(currency)) throw new Error(`STORE_CURRENCY: "${currency}" is not a three-letter currency code`)
  /** @type {Record<string, number>} */
  const taxRates = {}
  for (const entry of (process.env.STORE_TAX_RATES || "").split(",").filter((e) => e.trim())) {
    const [country, rate] = entry.split("=").map((part) => part.trim().toLowerCase())
    const percent = Number(rate)
    if (!/^[a-z]{2}$/.test(country ?? "") || rate === undefined || rate === "" || !(percent >= 0 && percent < 100)) {
      throw new Error(`STORE_TAX_RATES: "${entry}" is not country=percent, such as de=19`)
    }
    taxRates[country] = percent
  }
  const untaxed = countries.filter((country) => !(country in taxRates))
  if (untaxed.length) {
    throw new Error(`STORE_TAX_RATES has no rate for ${untaxed.join(", ")} (give 0 for a country that is not taxed)`)
  }
  const inclusive = (process.env.STORE_PRICES_INCLUDE_TAX || "true").toLowerCase()
  if (!["true", "false"].includes(inclusive)) {
    throw new Error(`STORE_PRICES_INCLUDE_TAX must be true or false, not "${process.env.STORE_PRICES_INCLUDE_TAX}"`)
  }
  return { countries, currency, taxRates, pricesIncludeTax: inclusive === "true" }
}

/**
 * @param {unknown} list
 * @param {string} id
 */
function includesId(list, id) {
  return Array.isArray(list) && list.some((item) => item?.id === id)
}

/**
 * Creates whatever of the store's starting data is missing.
 *
 * @param {import("@medusajs/framework/types").MedusaContainer} container
 * @param {{ countries: string[], currency: string, taxRates: Record<string, number>, pricesIncludeTax: boolean }} wanted
 * @param {(what: string) => void} note
 * @param {import("@medusajs/framework/types").StoreDTO} store
 */
async function seedStoreData(container, { countries, currency, taxRates, pricesIncludeTax }, note, store) {
  const link = container.resolve(ContainerRegistrationKeys.LINK)
  const query = container.resolve(ContainerRegistrationKeys.QUERY)
  const salesChannelModule = container.resolve(Modules.SALES_CHANNEL)
  const regionModule = container.resolve(Modules.REGION)
  const taxModule = container.resolve(Modules.TAX)
  const stockLocationModule = container.resolve(Modules.STOCK_LOCATION)
  const fulfillmentModule = container.resolve(Modules.FULFILLMENT)
  const productModule = container.resolve(Modules.PRODUCT)
  const inventoryModule = container.resolve(Modules.INVENTORY)

  // Sales channel: Medusa makes "Default Sales Channel" on its first boot.
  let [salesChannel] = await salesChannelModule.listSalesChannels({ name: SALES_CHANNEL })
  if (!salesChannel) {
    const { result } = await createSalesChannelsWorkflow(container).run({
      input: { salesChannelsData: [{ name: SALES_CHANNEL }] },
    })
    salesChannel = result[0]
    note(`created sales channel ${salesChannel.id}`)
  }

  // Region with the system payment provider, prices with or without tax, and a tax region per country (system
  // provider) with the country's default rate.
  let [region] = await regionModule.listRegions({ name: REGION })
  if (!region) {
    const { result } = await createRegionsWorkflow(container).run({
      input: {
        regions: [
          {
            name: REGION,
            currency_code: currency,
            countries,
            payment_providers: [PAYMENT_PROVIDER],
            is_tax_inclusive: pricesIncludeTax,
          },
        ],
      },
    })
    region = result[0]
    note(`created region ${region.id} (${currency}; ${countries.join(", ")}; prices ${pricesIncludeTax ? "include" : "exclude"} tax)`)
  }
  const regionCountries = (
    (await regionModule.retrieveRegion(region.id, { relations: ["countries"] })).countries ?? []
  ).map((c) => c.iso_2)
  if (!regionCountries.length) throw new Error(`region ${region.id} has no country`)
  // Country-wide tax regions only (a province's has a parent).
  const taxRegions = (await taxModule.listTaxRegions({ country_code: regionCountries })).filter((t) => !t.parent_id)
  const taxed = new Set(taxRegions.map((t) => t.country_code))
  const untaxed = regionCountries.filter((c) => !taxed.has(c))
  if (untaxed.length) {
    await createTaxRegionsWorkflow(container).run({
      input: untaxed.map((country_code) => ({
        country_code,
        provider_id: TAX_PROVIDER,
        // A rate of 0 leaves the country untaxed: no rate at all, as Medusa's own "no tax" looks.
        ...(taxRates[country_code] ? { default_tax_rate: { ...TAX_RATE, rate: taxRates[country_code] } } : {}),
      })),
    })
    note(`created tax regions ${untaxed.map((c) => `${c} ${taxRates[c] ?? 0}%`).join(", ")}`)
  }
  // Tax regions an interrupted run made before it could give them their rate.
  const withRates = new Set(
    (await taxModule.listTaxRates({ tax_region_id: taxRegions.map((t) => t.id) }))
      .filter((rate) => rate.is_default)
      .map((rate) => rate.tax_region_id)
  )
  const rateless = taxRegions.filter((t) => taxRates[t.country_code] && !withRates.has(t.id))
  if (rateless.length) {
    await createTaxRatesWorkflow(container).run({
      input: rateless.map((t) => ({
        ...TAX_RATE,
        tax_region_id: t.id,
        rate: taxRates[t.country_code],
        is_default: true,
      })),
    })
    note(`gave tax regions ${rateless.map((t) => t.country_code).join(", ")} their default rate`)
  }

  // Stock location, linked to the manual fulfillment provider and the sales channel.
  let [location] = await stockLocationModule.listStockLocations({ name: LOCATION })
  if (!location) {
    const { result } = await createStockLocationsWorkflow(container).run({
      input: { locations: [{ name: LOCATION, address: { address_1: "", country_code: regionCountries[0] } }] },
    })
    location = result[0]
    note(`created stock location ${location.id}`)
  }
  const {
    data: [locationLinks],
  } = await query.graph({
    entity: "stock_location",
    fields: ["id", "fulfillment_providers.id", "fulfillment_sets.id", "sales_channels.id"],
    filters: { id: location.id },
  })
  if (!includesId(locationLinks?.fulfillment_providers, FULFILLMENT_PROVIDER)) {
    await link.create({
      [Modules.STOCK_LOCATION]: { stock_location_id: location.id },
      [Modules.FULFILLMENT]: { fulfillment_provider_id: FULFILLMENT_PROVIDER },
    })
    note(`linked ${location.id} -> ${FULFILLMENT_PROVIDER}`)
  }
  if (!includesId(locationLinks?.sales_channels, salesChannel.id)) {
    await linkSalesChannelsToStockLocationWorkflow(container).run({
      input: { id: location.id, add: [salesChannel.id] },
    })
    note(`linked ${location.id} -> ${salesChannel.id}`)
  }

  // Fulfillment set with one service zone over the region's countries, linked to the location.
  let [fulfillmentSet] = await fulfillmentModule.listFulfillmentSets(
    { name: FULFILLMENT_SET },
    { relations: ["service_zones"] }
  )
  if (!fulfillmentSet) {
    fulfillmentSet = await fulfillmentModule.createFulfillmentSets({
      name: FULFILLMENT_SET,
      type: "shipping",
      service_zones: [
        {
          name: SERVICE_ZONE,
          geo_zones: regionCountries.map((country_code) => ({ type: /** @type {const} */ ("country"), country_code })),
        },
      ],
    })
    note(`created fulfillment set ${fulfillmentSet.id}`)
  }
  if (!includesId(locationLinks?.fulfillment_sets, fulfillmentSet.id)) {
    await link.create({
      [Modules.STOCK_LOCATION]: { stock_location_id: location.id },
      [Modules.FULFILLMENT]: { fulfillment_set_id: fulfillmentSet.id },
    })
    note(`linked ${location.id} -> ${fulfillmentSet.id}`)
  }
  const serviceZone =
    fulfillmentSet.service_zones.find((z) => z.name === SERVICE_ZONE) ?? fulfillmentSet.service_zones[0]
  if (!serviceZone) throw new Error(`fulfillment set ${fulfillmentSet.id} has no service zone`)

  // Shipping profile (Medusa's migrations may already have made the default one) and a flat-rate option.
  let [shippingProfile] = await fulfillmentModule.listShippingProfiles({ type: SHIPPING_PROFILE_TYPE })
  if (!shippingProfile) {
    const { result } = await createShippingProfilesWorkflow(container).run({
      input: { data: [{ name: "Default Shipping Profile", type: SHIPPING_PROFILE_TYPE }] },
    })
    shippingProfile = result[0]
    note(`created shipping profile ${shippingProfile.id}`)
  }
  const [shippingOption] = await fulfillmentModule.listShippingOptions({
    name: SHIPPING_OPTION,
    service_zone: { id: serviceZone.id },
  })
  if (!shippingOption) {
    const { result } = await createShippingOptionsWorkflow(container).run({
      input: [
        {
          name: SHIPPING_OPTION,
          price_type: "flat",
          provider_id: FULFILLMENT_PROVIDER,
          service_zone_id: serviceZone.id,
          shipping_profile_id: shippingProfile.id,
          type: { label: "Standard", description: "Flat rate", code: "standard" },
          prices: [
            { currency_code: region.currency_code, amount: SHIPPING_PRICE },
            { region_id: region.id, amount: SHIPPING_PRICE },
          ],
          rules: [
            { attribute: "enabled_in_store", value: "true", operator: "eq" },
            { attribute: "is_return", value: "false", operator: "eq" },
          ],
        },
      ],
    })
    note(`created shipping option ${result[0].id}`)
  }

  // The sample product and its stock at the location.
  let [product] = await productModule.listProducts({ handle: PRODUCT_HANDLE })
  if (!product) {
    const { result } = await createProductsWorkflow(container).run({
      input: {
        products: [
          {
            title: "Sample T-Shirt",
            handle: PRODUCT_HANDLE,
            description: "A sample product, created when the store was provisioned.",
            status: ProductStatus.PUBLISHED,
            shipping_profile_id: shippingProfile.id,
            options: [{ title: "Size", values: ["One Size"] }],
            variants: [
              {
                title: "One Size",
                sku: PRODUCT_SKU,
                manage_inventory: true,
                options: { Size: "One Size" },
                prices: [{ currency_code: region.currency_code, amount: PRODUCT_PRICE }],
              },
            ],
            sales_channels: [{ id: salesChannel.id }],
          },
        ],
      },
    })
    product = result[0]
    note(`created product ${product.id}`)
  }
  const [inventoryItem] = await inventoryModule.listInventoryItems({ sku: PRODUCT_SKU })
  if (!inventoryItem) throw new Error(`no inventory item for SKU ${PRODUCT_SKU}`)
  const levels = await inventoryModule.listInventoryLevels({
    inventory_item_id: inventoryItem.id,
    location_id: location.id,
  })
  if (!levels.length) {
    await createInventoryLevelsWorkflow(container).run({
      input: {
        inventory_levels: [{ inventory_item_id: inventoryItem.id, location_id: location.id, stocked_quantity: STOCK }],
      },
    })
    note(`created inventory level ${inventoryItem.id} @ ${location.id}`)
  } else if (!levels[0].stocked_quantity) {
    // The level made empty by the hook that makes new products sellable (src/workflows/hooks), when an interrupted
    // run had already set the store's default location.
    await inventoryModule.updateInventoryLevels([
      { inventory_item_id: inventoryItem.id, location_id: location.id, stocked_quantity: STOCK },
    ])
    note(`stocked inventory level ${inventoryItem.id} @ ${location.id}`)
  }

  // Store settings: only the region's currency (as default; Medusa starts the store with EUR), its prices with or
  // without tax (Medusa keeps that as the currency's price preference, which the admin's price editor follows), and
  // the defaults above where Medusa left none. Last, with the marker, so an interrupted run is completed next time.
  /** @type {Record<string, any>} */
  const update = {
    supported_currencies: [
      { currency_code: region.currency_code, is_default: true, is_tax_inclusive: pricesIncludeTax },
    ],
  }
  if (!store.default_sales_channel_id) update.default_sales_channel_id = salesChannel.id
  if (!store.default_region_id) update.default_region_id = region.id
  if (!store.default_location_id) update.default_location_id = location.id
  update.metadata = { ...(store.metadata ?? {}), [SEEDED_KEY]: new Date().toISOString() }
  await updateStoresWorkflow(container).run({ input: { selector: { id: store.id }, update } })
  note(`updated the store (set ${Object.keys(update).join(", ")})`)

  return salesChannel.id
}

/**
 * Returns an unrevoked publishable key linked to the sales channel, creating or linking one if needed.
 *
 * @param {import("@medusajs/framework/types").MedusaContainer} container
 * @param {string} salesChannelId
 * @param {(what: string) => void} note
 */
async function ensurePublishableKey(container, salesChannelId, note) {
  const query = container.resolve(ContainerRegistrationKeys.QUERY)
  const apiKeyModule = container.resolve(Modules.API_KEY)

  // Medusa makes "Default Publishable API Key" on its first boot, linked to the default sales channel.
  const keys = await apiKeyModule.listApiKeys({ type: "publishable" }, { order: { created_at: "ASC" } })
  let apiKey = keys.find((key) => !key.revoked_at)
  if (!apiKey) {
    const { result } = await createApiKeysWorkflow(container).run({
      input: { api_keys: [{ title: PUBLISHABLE_KEY_TITLE, type: "publishable", created_by: "" }] },
    })
    apiKey = result[0]
    note(`created publishable API key ${apiKey.id}`)
  }
  const {
    data: [keyLinks],
  } = await query.graph({ entity: "api_key", fields: ["id", "sales_channels.id"], filters: { id: apiKey.id } })
  if (!includesId(keyLinks?.sales_channels, salesChannelId)) {
    await linkSalesChannelsToApiKeyWorkflow(container).run({ input: { id: apiKey.id, add: [salesChannelId] } })
    note(`linked ${apiKey.id} -> ${salesChannelId}`)
  }
  return apiKey.token
}

/** @param {import("@medusajs/framework/types").ExecArgs} args */
async function seed({ container }) {
  const wanted = settings()
  const logger = container.resolve(ContainerRegistrationKeys.LOGGER)
  const storeModule = container.resolve(Modules.STORE)

  /** @type {string[]} */
  const changes = []
  /** @param {string} what */
  const note = (what) => {
    changes.push(what)
    logger.info(`seed: ${what}`)
  }

  const [store] = await storeModule.listStores({}, { relations: ["supported_currencies"] })
  if (!store) throw new Error("Medusa has not created its store yet")

  let salesChannelId
  const seededAt = store.metadata?.[SEEDED_KEY]
  if (seededAt) {
    logger.info(`seed: the store's data was seeded at ${seededAt}; leaving it alone`)
    salesChannelId = store.default_sales_channel_id
    if (!salesChannelId) throw new Error("the store has no default sales channel")
  } else {
    salesChannelId = await seedStoreData(container, wanted, note, store)
  }
  const token = await ensurePublishableKey(container, salesChannelId, note)

  logger.info(changes.length ? `seed: ${changes.length} change(s)` : "seed: nothing to do")
  if (process.env.PUBLISHABLE_KEY_FILE) writeFileSync(process.env.PUBLISHABLE_KEY_FILE, token)
  process.stdout.write(`publishable-key: ${token}\n`)
}

exports.default = seed
