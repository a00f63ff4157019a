// A typed client of the parts of Medusa v2's store API this storefront uses. Every call carries the store's
// publishable key; the backend is the page's own origin unless the run-time configuration names another one.

/** What server.mjs serves as config.json: read at start-up, so one build serves every store. */
export interface Config {
  publishableKey: string;
  /** Empty: the backend is this origin (an ingress routes /store there). */
  backendUrl: string;
}

export async function loadConfig(): Promise<Config> {
  // Relative, so the app also works under a path prefix (vite builds with base "./").
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  const config = (await response.json()) as Partial<Config>;
  if (!config.publishableKey) throw new Error("config.json has no publishableKey");
  return { publishableKey: config.publishableKey, backendUrl: (config.backendUrl ?? "").replace(/\/+$/, "") };
}

export interface Country {
  iso_2: string;
  display_name: string;
}

export interface Region {
  id: string;
  name: string;
  currency_code: string;
  countries: Country[];
}

export interface Price {
  calculated_amount: number | null;
  currency_code: string;
}

export interface Variant {
  id: string;
  title: string | null;
  calculated_price?: Price | null;
  inventory_quantity?: number | null;
  manage_inventory?: boolean;
  allow_backorder?: boolean;
}

export interface Product {
  id: string;
  title: string;
  handle: string;
  description: string | null;
  thumbnail: string | null;
  variants: Variant[];
}

export interface LineItem {
  id: string;
  title: string;
  product_title: string | null;
  product_handle: string | null;
  variant_title: string | null;
  thumbnail: string | null;
  quantity: number;
  unit_price: number;
  /** Whether unit_price includes tax: the region's setting (prices include tax by default, as EU shops show them). */
  is_tax_inclusive?: boolean;
  /** Present on orders; a cart's items carry only unit_price and quantity by default. */
  total?: number;
}

export interface Address {
  first_name: string;
  last_name: string;
  address_1: string;
  city: string;
  country_code: string;
  postal_code: string;
  province: string;
  phone: string;
}

export interface Cart {
  id: string;
  region_id: string;
  currency_code: string;
  email: string | null;
  completed_at: string | null;
  items: LineItem[];
  shipping_address: Partial<Address> | null;
  shipping_methods: { shipping_option_id: string }[] | null;
  payment_collection?: { id: string } | null;
  // Medusa v2's cart "subtotal" includes shipping; item_subtotal is the goods alone, without tax, and item_total
  // the goods with tax.
  item_subtotal: number;
  item_total: number;
  item_tax_total: number;
  shipping_total: number;
  tax_total: number;
  total: number;
}

export interface ShippingOption {
  id: string;
  name: string;
  amount: number;
}

export interface Order {
  id: string;
  display_id: number;
  email: string;
  currency_code: string;
  items: LineItem[];
  item_subtotal: number;
  item_total: number;
  shipping_subtotal: number;
  shipping_total: number;
  tax_total: number;
  total: number;
}

/** Whether the amounts are shown with tax included: the prices were entered so (every line says). */
export function taxIncluded(items: LineItem[]): boolean {
  return items.length > 0 && items.every((item) => item.is_tax_inclusive);
}

/** The goods' amount as the shopper reads the prices: with tax where the prices include it, else without. */
export function goodsTotal(cart: { items: LineItem[]; item_subtotal: number; item_total: number }): number {
  return taxIncluded(cart.items) ? cart.item_total : cart.item_subtotal;
}

/** The payment provider every seeded region has: no money moves online, the merchant collects it. */
export const MANUAL_PAYMENT = "pp_system_default";

/** An error worth showing: Medusa's own message where it sent one, or what went wrong on the way. */
export class StoreError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type?: string,
  ) {
    super(message);
    this.name = "StoreError";
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const PRODUCT_FIELDS = "*variants.calculated_price,+variants.inventory_quantity";

export function storeApi(config: Config) {
  async function call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { "x-publishable-api-key": config.publishableKey };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(`${config.backendUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      // fetch says only "Failed to fetch": the network, or a backend whose STORE_CORS leaves this origin out.
      throw new StoreError("The store could not be reached. Check your connection and try again.", 0);
    }
    const text = await response.text();
    let data: unknown = undefined;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      // An ingress or proxy error page rather than Medusa: fall through to the status line.
    }
    if (!response.ok) {
      const reply = (data ?? {}) as { message?: unknown; type?: unknown };
      const message = typeof reply.message === "string" && reply.message ? reply.message : `HTTP ${response.status}`;
      throw new StoreError(message, response.status, typeof reply.type === "string" ? reply.type : undefined);
    }
    return data as T;
  }
  const q = encodeURIComponent;

  return {
    async region(): Promise<Region> {
      const { regions } = await call<{ regions: Region[] }>("GET", "/store/regions");
      if (!regions.length) throw new StoreError("This store has no region yet.", 0);
      return regions[0];
    },
    async products(regionId: string): Promise<Product[]> {
      const path = `/store/products?region_id=${q(regionId)}&fields=${q(PRODUCT_FIELDS)}&limit=100`;
      return (await call<{ products: Product[] }>("GET", path)).products;
    },
    async product(handle: string, regionId: string): Promise<Product | null> {
      const path = `/store/products?handle=${q(handle)}&region_id=${q(regionId)}&fields=${q(PRODUCT_FIELDS)}`;
      return (await call<{ products: Product[] }>("GET", path)).products[0] ?? null;
    },
    async createCart(regionId: string): Promise<Cart> {
      return (await call<{ cart: Cart }>("POST", "/store/carts", { region_id: regionId })).cart;
    },
    async cart(id: string): Promise<Cart> {
      return (await call<{ cart: Cart }>("GET", `/store/carts/${q(id)}`)).cart;
    },
    async addItem(cartId: string, variantId: string, quantity: number): Promise<Cart> {
      const body = { variant_id: variantId, quantity };
      return (await call<{ cart: Cart }>("POST", `/store/carts/${q(cartId)}/line-items`, body)).cart;
    },
    async updateItem(cartId: string, lineId: string, quantity: number): Promise<Cart> {
      const path = `/store/carts/${q(cartId)}/line-items/${q(lineId)}`;
      return (await call<{ cart: Cart }>("POST", path, { quantity })).cart;
    },
    async removeItem(cartId: string, lineId: string): Promise<Cart> {
      // The answer is a deletion record with the cart as its "parent".
      const path = `/store/carts/${q(cartId)}/line-items/${q(lineId)}`;
      return (await call<{ parent: Cart }>("DELETE", path)).parent;
    },
    async updateCart(cartId: string, update: { email: string; shipping_address: Address; billing_address: Address }) {
      return (await call<{ cart: Cart }>("POST", `/store/carts/${q(cartId)}`, update)).cart;
    },
    async shippingOptions(cartId: string): Promise<ShippingOption[]> {
      const path = `/store/shipping-options?cart_id=${q(cartId)}`;
      return (await call<{ shipping_options: ShippingOption[] }>("GET", path)).shipping_options;
    },
    async addShippingMethod(cartId: string, optionId: string): Promise<Cart> {
      const path = `/store/carts/${q(cartId)}/shipping-methods`;
      return (await call<{ cart: Cart }>("POST", path, { option_id: optionId })).cart;
    },
    async createPaymentCollection(cartId: string): Promise<string> {
      const reply = await call<{ payment_collection: { id: string } }>("POST", "/store/payment-collections", {
        cart_id: cartId,
      });
      return reply.payment_collection.id;
    },
    async createPaymentSession(collectionId: string, providerId: string): Promise<void> {
      const path = `/store/payment-collections/${q(collectionId)}/payment-sessions`;
      await call("POST", path, { provider_id: providerId });
    },
    async complete(cartId: string): Promise<Order> {
      const reply = await call<{ type: "order"; order: Order } | { type: "cart"; error?: { message?: string } }>(
        "POST",
        `/store/carts/${q(cartId)}/complete`,
      );
      // A cart that cannot be completed comes back as the cart with an error, not as an HTTP error.
      if (reply.type !== "order") {
        throw new StoreError(reply.error?.message || "The order could not be placed.", 200);
      }
      return reply.order;
    },
    async order(id: string): Promise<Order> {
      return (await call<{ order: Order }>("GET", `/store/orders/${q(id)}`)).order;
    },
  };
}

export type StoreApi = ReturnType<typeof storeApi>;

/** Medusa v2 amounts are in the currency's main unit: 20 is 20.00. */
export function money(amount: number | null | undefined, currency: string): string {
  if (amount === null || amount === undefined) return "—";
  return new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(amount);
}
