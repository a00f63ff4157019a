// The shopper's cart: its id lives in localStorage, so it survives reloads and new tabs; the cart itself is
// Medusa's. It is created on the first "Add to cart", not on the first visit, so browsing makes no carts.

import { useCallback, useEffect, useRef, useState } from "react";
import { StoreError, describe, type Cart, type StoreApi } from "./api";

const CART_KEY = "medusa-storefront-cart";

export interface CartState {
  cart: Cart | null;
  loading: boolean;
  /** Set when the saved cart could not be read (not when it no longer exists: then it is dropped). */
  error: string | null;
  add: (regionId: string, variantId: string, quantity: number) => Promise<void>;
  update: (lineId: string, quantity: number) => Promise<void>;
  remove: (lineId: string) => Promise<void>;
  /** Waits for a call that answers with the cart, and keeps that answer. */
  replace: (call: Promise<Cart>) => Promise<Cart>;
  forget: () => void;
}

export function useCart(api: StoreApi): CartState {
  const [cart, setCart] = useState<Cart | null>(null);
  const [loading, setLoading] = useState(() => localStorage.getItem(CART_KEY) !== null);
  const [error, setError] = useState<string | null>(null);
  // The newest cart, for callbacks that must not wait for a render to see it.
  const current = useRef<Cart | null>(null);

  const keep = useCallback((next: Cart | null) => {
    current.current = next;
    setCart(next);
    if (next) localStorage.setItem(CART_KEY, next.id);
    else localStorage.removeItem(CART_KEY);
  }, []);

  useEffect(() => {
    const id = localStorage.getItem(CART_KEY);
    if (!id) return;
    let live = true;
    api.cart(id).then(
      (saved) => {
        if (!live) return;
        // A cart whose order was placed (in another tab, say) takes no more items.
        keep(saved.completed_at ? null : saved);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        if (e instanceof StoreError && e.status === 404) keep(null);
        else setError(describe(e));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [api, keep]);

  const replace = useCallback(
    async (call: Promise<Cart>) => {
      const next = await call;
      keep(next);
      return next;
    },
    [keep],
  );

  const add = useCallback(
    async (regionId: string, variantId: string, quantity: number) => {
      let id = current.current?.id;
      if (!id) id = (await replace(api.createCart(regionId))).id;
      await replace(api.addItem(id, variantId, quantity));
    },
    [api, replace],
  );

  const update = useCallback(
    async (lineId: string, quantity: number) => {
      const id = current.current?.id;
      if (id) await replace(api.updateItem(id, lineId, quantity));
    },
    [api, replace],
  );

  const remove = useCallback(
    async (lineId: string) => {
      const id = current.current?.id;
      if (id) await replace(api.removeItem(id, lineId));
    },
    [api, replace],
  );

  const forget = useCallback(() => keep(null), [keep]);

  return { cart, loading, error, add, update, remove, replace, forget };
}
