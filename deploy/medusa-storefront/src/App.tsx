import { useEffect, useMemo, useState, type FormEvent, type ReactNode } from "react";
import {
  MANUAL_PAYMENT,
  describe,
  goodsTotal,
  money,
  storeApi,
  taxIncluded,
  type Address,
  type Cart,
  type Config,
  type LineItem,
  type Order,
  type Product,
  type Region,
  type ShippingOption,
  type StoreApi,
  type Variant,
} from "./api";
import { useCart, type CartState } from "./useCart";

type Route =
  | { page: "products" }
  | { page: "product"; handle: string }
  | { page: "cart" }
  | { page: "checkout" }
  | { page: "order"; id: string }
  | { page: "missing" };

// Hash routes: the server only ever has to serve index.html, whatever the page.
function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "") || "/";
  if (path === "/") return { page: "products" };
  if (path === "/cart") return { page: "cart" };
  if (path === "/checkout") return { page: "checkout" };
  const product = /^\/products\/([^/]+)$/.exec(path);
  if (product) return { page: "product", handle: decodeURIComponent(product[1]) };
  const order = /^\/order\/([^/]+)$/.exec(path);
  if (order) return { page: "order", id: decodeURIComponent(order[1]) };
  return { page: "missing" };
}

function useRoute(): Route {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => {
      setHash(window.location.hash);
      window.scrollTo(0, 0);
    };
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return useMemo(() => parseRoute(hash), [hash]);
}

function navigate(path: string) {
  window.location.hash = path;
}

/** Runs `load` whenever `deps` change, dropping the answers of superseded runs. */
function useLoad<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  useEffect(() => {
    let live = true;
    setState({ loading: true });
    load().then(
      (data) => live && setState({ data, loading: false }),
      (error: unknown) => live && setState({ error: describe(error), loading: false }),
    );
    return () => {
      live = false;
    };
  }, deps);
  return state;
}

export function App({ config }: { config: Config }) {
  const api = useMemo(() => storeApi(config), [config]);
  const route = useRoute();
  const region = useLoad(() => api.region(), [api]);
  const cart = useCart(api);
  const [placed, setPlaced] = useState<Order | null>(null);
  const count = cart.cart?.items.reduce((sum, item) => sum + item.quantity, 0) ?? 0;

  let body: ReactNode;
  if (region.error) body = <Problem>{region.error}</Problem>;
  else if (!region.data) body = <p className="muted">Loading…</p>;
  else if (route.page === "products") body = <ProductList api={api} region={region.data} />;
  else if (route.page === "product")
    body = <ProductPage key={route.handle} api={api} region={region.data} handle={route.handle} cart={cart} />;
  else if (route.page === "cart") body = <CartPage cart={cart} />;
  else if (route.page === "checkout")
    body = (
      <Checkout
        // Mounted again once the cart is in, so the form starts from what the cart holds.
        key={cart.loading ? "loading" : "ready"}
        api={api}
        region={region.data}
        cart={cart}
        onPlaced={(order) => {
          // The completed cart cannot take items any more: the next purchase starts a new one.
          cart.forget();
          setPlaced(order);
          navigate(`/order/${order.id}`);
        }}
      />
    );
  else if (route.page === "order")
    body = <OrderPage key={route.id} api={api} id={route.id} placed={placed?.id === route.id ? placed : null} />;
  else body = <Problem>This page does not exist.</Problem>;

  return (
    <>
      <header className="top">
        <a className="brand" href="#/">
          Shop
        </a>
        <a className="cart-link" href="#/cart">
          Cart ({count})
        </a>
      </header>
      <main>{body}</main>
    </>
  );
}

function Problem({ children }: { children: ReactNode }) {
  return (
    <p className="error" role="alert">
      {children}
    </p>
  );
}

function variantPrice(variant: Variant): number | null {
  return variant.calculated_price?.calculated_amount ?? null;
}

function soldOut(variant: Variant): boolean {
  return !!variant.manage_inventory && !variant.allow_backorder && (variant.inventory_quantity ?? 0) <= 0;
}

/** The cheapest variant's price, "from …" when the variants differ. */
function priceLabel(product: Product, currency: string): string {
  const prices = product.variants.map(variantPrice).filter((p): p is number => p !== null);
  if (!prices.length) return "Not available";
  const low = Math.min(...prices);
  return low === Math.max(...prices) ? money(low, currency) : `from ${money(low, currency)}`;
}

function ProductList({ api, region }: { api: StoreApi; region: Region }) {
  const products = useLoad(() => api.products(region.id), [api, region.id]);
  if (products.error) return <Problem>{products.error}</Problem>;
  if (!products.data) return <p className="muted">Loading products…</p>;
  return (
    <section aria-labelledby="products-title">
      <h1 id="products-title">Products</h1>
      {products.data.length === 0 ? (
        <p className="muted">No products yet.</p>
      ) : (
        <ul className="products" aria-label="Products">
          {products.data.map((product) => (
            <li key={product.id}>
              <a href={`#/products/${encodeURIComponent(product.handle)}`} className="product-card">
                <Thumbnail src={product.thumbnail} />
                <span className="product-title">{product.title}</span>
                <span className="price">{priceLabel(product, region.currency_code)}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function Thumbnail({ src, small }: { src: string | null; small?: boolean }) {
  const className = small ? "thumb small-thumb" : "thumb";
  // Decorative: the title next to it says what it shows.
  return src ? <img className={className} src={src} alt="" /> : <span className={`${className} no-thumb`} aria-hidden="true" />;
}

function ProductPage(props: { api: StoreApi; region: Region; handle: string; cart: CartState }) {
  const { api, region, handle, cart } = props;
  const product = useLoad(() => api.product(handle, region.id), [api, handle, region.id]);
  const [variantId, setVariantId] = useState<string | null>(null);
  const [quantity, setQuantity] = useState(1);
  const [busy, setBusy] = useState(false);
  const [added, setAdded] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  if (product.error) return <Problem>{product.error}</Problem>;
  if (product.loading) return <p className="muted">Loading…</p>;
  if (!product.data) return <Problem>This product does not exist (or is not sold here).</Problem>;
  const p = product.data;
  const variant =
    p.variants.find((v) => v.id === variantId) ?? p.variants.find((v) => !soldOut(v)) ?? p.variants[0];
  const price = variant ? variantPrice(variant) : null;
  const limited = variant && variant.manage_inventory && !variant.allow_backorder;
  const unavailable = !variant || price === null || soldOut(variant);

  async function add(event: FormEvent) {
    event.preventDefault();
    if (!variant) return;
    setBusy(true);
    setError(null);
    setAdded(null);
    try {
      await cart.add(region.id, variant.id, quantity);
      setAdded(`Added ${quantity} × ${p.title} to your cart.`);
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <article className="product" aria-labelledby="product-title">
      <Thumbnail src={p.thumbnail} />
      <div className="product-info">
        <h1 id="product-title">{p.title}</h1>
        <p className="price" data-testid="price">
          {price === null ? "Not available" : money(price, region.currency_code)}
        </p>
        {p.description && <p>{p.description}</p>}
        <form onSubmit={add}>
          {p.variants.length > 1 && (
            <div className="field">
              <label htmlFor="variant">Variant</label>
              <select id="variant" value={variant?.id} onChange={(e) => setVariantId(e.target.value)}>
                {p.variants.map((v) => (
                  <option key={v.id} value={v.id} disabled={soldOut(v)}>
                    {v.title ?? v.id}
                    {soldOut(v) ? " (sold out)" : ""}
                  </option>
                ))}
              </select>
            </div>
          )}
          <div className="field">
            <label htmlFor="quantity">Quantity</label>
            <input
              id="quantity"
              type="number"
              inputMode="numeric"
              min={1}
              max={limited ? Math.max(variant.inventory_quantity ?? 1, 1) : undefined}
              value={quantity}
              onChange={(e) => setQuantity(Math.max(1, Math.floor(Number(e.target.value) || 1)))}
              required
            />
          </div>
          {variant && soldOut(variant) && <p className="muted">Sold out.</p>}
          <button type="submit" disabled={busy || unavailable}>
            {busy ? "Adding…" : "Add to cart"}
          </button>
        </form>
        {added && (
          <p className="ok" role="status">
            {added} <a href="#/cart">View cart</a>
          </p>
        )}
        {error && <Problem>{error}</Problem>}
      </div>
    </article>
  );
}

function itemName(item: LineItem): string {
  return item.product_title ?? item.title;
}

function CartPage({ cart }: { cart: CartState }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function act(lineId: string, action: () => Promise<unknown>) {
    setBusy(lineId);
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(null);
    }
  }

  if (cart.error) return <Problem>{cart.error}</Problem>;
  if (cart.loading) return <p className="muted">Loading your cart…</p>;
  const c = cart.cart;
  return (
    <section aria-labelledby="cart-title">
      <h1 id="cart-title">Your cart</h1>
      {!c || c.items.length === 0 ? (
        <p>
          Your cart is empty. <a href="#/">See the products</a>
        </p>
      ) : (
        <>
          <ul className="lines" aria-label="Items">
            {c.items.map((item) => (
              <li key={item.id} className="line" aria-label={itemName(item)}>
                <Thumbnail src={item.thumbnail} small />
                <div className="line-text">
                  <span className="line-title">{itemName(item)}</span>
                  {item.variant_title && <span className="muted small">{item.variant_title}</span>}
                  <span className="muted small">{money(item.unit_price, c.currency_code)} each</span>
                </div>
                <div className="qty" role="group" aria-label={`Quantity of ${itemName(item)}`}>
                  <button
                    type="button"
                    className="secondary"
                    aria-label={`One less ${itemName(item)}`}
                    disabled={busy !== null || item.quantity <= 1}
                    onClick={() => act(item.id, () => cart.update(item.id, item.quantity - 1))}
                  >
                    −
                  </button>
                  <output data-testid="quantity">{item.quantity}</output>
                  <button
                    type="button"
                    className="secondary"
                    aria-label={`One more ${itemName(item)}`}
                    disabled={busy !== null}
                    onClick={() => act(item.id, () => cart.update(item.id, item.quantity + 1))}
                  >
                    +
                  </button>
                </div>
                <span className="line-total">{money(item.unit_price * item.quantity, c.currency_code)}</span>
                <button
                  type="button"
                  className="link-button remove"
                  disabled={busy !== null}
                  onClick={() => act(item.id, () => cart.remove(item.id))}
                >
                  Remove
                </button>
              </li>
            ))}
          </ul>
          {error && <Problem>{error}</Problem>}
          <dl className="totals">
            <dt>Subtotal</dt>
            <dd data-testid="subtotal">{money(goodsTotal(c), c.currency_code)}</dd>
          </dl>
          <p className="muted small">Shipping is chosen at checkout.</p>
          <p>
            <a className="button" href="#/checkout">
              Checkout
            </a>
          </p>
        </>
      )}
    </section>
  );
}

type AddressField = Exclude<keyof Address, "province" | "country_code">;

const ADDRESS_FIELDS: { name: AddressField; label: string; autoComplete: string; type?: string }[] = [
  { name: "first_name", label: "First name", autoComplete: "given-name" },
  { name: "last_name", label: "Last name", autoComplete: "family-name" },
  { name: "address_1", label: "Address", autoComplete: "address-line1" },
  { name: "city", label: "City", autoComplete: "address-level2" },
  { name: "postal_code", label: "Postal code", autoComplete: "postal-code" },
  { name: "phone", label: "Phone", autoComplete: "tel", type: "tel" },
];

function Checkout(props: { api: StoreApi; region: Region; cart: CartState; onPlaced: (order: Order) => void }) {
  const { api, region, cart, onPlaced } = props;
  const c = cart.cart;
  const cartId = c?.id;
  const options = useLoad<ShippingOption[]>(
    () => (cartId ? api.shippingOptions(cartId) : Promise.resolve([])),
    [api, cartId],
  );
  // Start from what the cart already holds, so a failed attempt or a reload does not lose the form.
  const [email, setEmail] = useState(c?.email ?? "");
  const [address, setAddress] = useState<Address>(() => ({
    first_name: c?.shipping_address?.first_name ?? "",
    last_name: c?.shipping_address?.last_name ?? "",
    address_1: c?.shipping_address?.address_1 ?? "",
    city: c?.shipping_address?.city ?? "",
    postal_code: c?.shipping_address?.postal_code ?? "",
    phone: c?.shipping_address?.phone ?? "",
    province: "",
    country_code: c?.shipping_address?.country_code ?? region.countries[0]?.iso_2 ?? "",
  }));
  const [optionId, setOptionId] = useState<string | null>(c?.shipping_methods?.[0]?.shipping_option_id ?? null);
  const [payment, setPayment] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  if (cart.error) return <Problem>{cart.error}</Problem>;
  if (cart.loading) return <p className="muted">Loading your cart…</p>;
  if (!c || c.items.length === 0) {
    return (
      <p>
        Your cart is empty. <a href="#/">See the products</a>
      </p>
    );
  }
  const cartNow: Cart = c;
  const list = options.data ?? [];
  // One option needs no choosing.
  const chosen = list.find((o) => o.id === optionId) ?? (list.length === 1 ? list[0] : undefined);

  async function place(event: FormEvent) {
    event.preventDefault();
    if (!chosen) {
      setError("Choose a shipping option.");
      return;
    }
    if (payment !== MANUAL_PAYMENT) {
      setError("Choose a payment method.");
      return;
    }
    setError(null);
    try {
      const addressNow = { ...address, country_code: address.country_code.toLowerCase() };
      setBusy("Saving your address…");
      let updated = await cart.replace(
        api.updateCart(cartNow.id, { email: email.trim(), shipping_address: addressNow, billing_address: addressNow }),
      );
      setBusy("Choosing the shipping…");
      updated = await cart.replace(api.addShippingMethod(updated.id, chosen.id));
      setBusy("Preparing the payment…");
      // A second attempt reuses the collection the first one made.
      const collection = updated.payment_collection?.id ?? (await api.createPaymentCollection(updated.id));
      await api.createPaymentSession(collection, MANUAL_PAYMENT);
      setBusy("Placing the order…");
      onPlaced(await api.complete(updated.id));
    } catch (e) {
      setError(describe(e));
      setBusy(null);
    }
  }

  const shipping = chosen?.amount ?? 0;
  return (
    <section aria-labelledby="checkout-title">
      <h1 id="checkout-title">Checkout</h1>
      <form className="checkout" onSubmit={place}>
        <fieldset>
          <legend>Contact</legend>
          <div className="field">
            <label htmlFor="email">E-mail</label>
            <input
              id="email"
              type="email"
              autoComplete="email"
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              required
            />
          </div>
        </fieldset>
        <fieldset className="address">
          <legend>Shipping address</legend>
          {ADDRESS_FIELDS.map((f) => (
            <div className="field" key={f.name}>
              <label htmlFor={f.name}>{f.label}</label>
              <input
                id={f.name}
                type={f.type ?? "text"}
                autoComplete={`shipping ${f.autoComplete}`}
                value={address[f.name]}
                onChange={(e) => setAddress({ ...address, [f.name]: e.target.value })}
                required
              />
            </div>
          ))}
          <div className="field">
            <label htmlFor="country">Country</label>
            <select
              id="country"
              autoComplete="shipping country"
              value={address.country_code}
              onChange={(e) => setAddress({ ...address, country_code: e.target.value })}
              required
            >
              {region.countries.map((country) => (
                <option key={country.iso_2} value={country.iso_2}>
                  {country.display_name}
                </option>
              ))}
            </select>
          </div>
        </fieldset>
        <fieldset>
          <legend>Shipping</legend>
          {options.error && <Problem>{options.error}</Problem>}
          {options.loading && <p className="muted">Loading shipping options…</p>}
          {!options.loading && !options.error && list.length === 0 && (
            <Problem>No shipping option reaches this cart. The store has to set one up.</Problem>
          )}
          {list.map((option) => (
            <label key={option.id} className="choice">
              <input
                type="radio"
                name="shipping"
                value={option.id}
                checked={chosen?.id === option.id}
                onChange={() => setOptionId(option.id)}
                required
              />
              <span>{option.name}</span>
              <span className="price">{money(option.amount, cartNow.currency_code)}</span>
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Payment</legend>
          <label className="choice">
            <input
              type="radio"
              name="payment"
              value={MANUAL_PAYMENT}
              checked={payment === MANUAL_PAYMENT}
              onChange={() => setPayment(MANUAL_PAYMENT)}
              required
            />
            <span>Pay on delivery (manual payment)</span>
          </label>
        </fieldset>
        <dl className="totals" aria-label="Summary">
          <dt>Items</dt>
          <dd>{money(goodsTotal(cartNow), cartNow.currency_code)}</dd>
          <dt>Shipping</dt>
          <dd>{chosen ? money(shipping, cartNow.currency_code) : "—"}</dd>
          {!taxIncluded(cartNow.items) && (
            <>
              <dt>Tax</dt>
              <dd>{money(cartNow.item_tax_total, cartNow.currency_code)} and tax on shipping</dd>
            </>
          )}
          <dt>Total</dt>
          <dd data-testid="total">{money(cartNow.item_total + shipping, cartNow.currency_code)}</dd>
        </dl>
        {taxIncluded(cartNow.items) && <p className="muted small">Prices include tax.</p>}
        {error && <Problem>{error}</Problem>}
        <button type="submit" disabled={busy !== null || options.loading}>
          {busy ?? "Place order"}
        </button>
      </form>
    </section>
  );
}

function OrderPage({ api, id, placed }: { api: StoreApi; id: string; placed: Order | null }) {
  // Just placed: the completion answered with the order already; after a reload, ask for it.
  const loaded = useLoad(() => (placed ? Promise.resolve(placed) : api.order(id)), [api, id, placed]);
  if (loaded.error) return <Problem>{loaded.error}</Problem>;
  if (!loaded.data) return <p className="muted">Loading your order…</p>;
  const order = loaded.data;
  return (
    <section aria-labelledby="order-title" data-testid="order-confirmation" data-order-id={order.id}>
      <h1 id="order-title">Thank you for your order</h1>
      <p>
        Order <strong data-testid="order-number">#{order.display_id}</strong>, placed with{" "}
        <strong>{order.email}</strong>.
      </p>
      <ul className="lines" aria-label="Items">
        {order.items.map((item) => (
          <li key={item.id} className="line" aria-label={itemName(item)}>
            <Thumbnail src={item.thumbnail} small />
            <div className="line-text">
              <span className="line-title">{itemName(item)}</span>
              {item.variant_title && <span className="muted small">{item.variant_title}</span>}
            </div>
            <span className="qty">× {item.quantity}</span>
            <span className="line-total">
              {money(item.total ?? item.unit_price * item.quantity, order.currency_code)}
            </span>
          </li>
        ))}
      </ul>
      <dl className="totals">
        <dt>Items</dt>
        <dd>{money(goodsTotal(order), order.currency_code)}</dd>
        <dt>Shipping</dt>
        <dd>{money(taxIncluded(order.items) ? order.shipping_total : order.shipping_subtotal, order.currency_code)}</dd>
        {order.tax_total > 0 && (
          <>
            <dt>{taxIncluded(order.items) ? "Included tax" : "Tax"}</dt>
            <dd data-testid="order-tax">{money(order.tax_total, order.currency_code)}</dd>
          </>
        )}
        <dt>Total</dt>
        <dd data-testid="order-total">{money(order.total, order.currency_code)}</dd>
      </dl>
      <p className="muted small">You pay on delivery.</p>
      <p>
        <a href="#/">Continue shopping</a>
      </p>
    </section>
  );
}
