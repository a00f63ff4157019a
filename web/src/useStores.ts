// The tenant's stores, live: one WatchStores stream, replaced on every snapshot and patched on every change. It
// reconnects by itself (with a growing pause) after the gateway or the status service goes away.

import { useEffect, useState } from "react";
import { Code, ConnectError, type Clients } from "./api";
import { ChangeType } from "./gen/store_platform/v1/status_pb";
import type { Store } from "./gen/store_platform/v1/store_pb";

export type Connection = "connecting" | "live" | "reconnecting";

export interface LiveStores {
  stores: Map<string, Store>;
  connection: Connection;
  /** Set when the server refused the token: the session is over. */
  unauthenticated: boolean;
}

export function useStores(api: Clients): LiveStores {
  const [stores, setStores] = useState<Map<string, Store>>(new Map());
  const [connection, setConnection] = useState<Connection>("connecting");
  const [unauthenticated, setUnauthenticated] = useState(false);

  useEffect(() => {
    const abort = new AbortController();
    let pause = 500;
    (async () => {
      while (!abort.signal.aborted) {
        try {
          for await (const message of api.status.watchStores({}, { signal: abort.signal })) {
            const event = message.event;
            if (event.case === "snapshot") {
              setStores(new Map(event.value.stores.map((s) => [s.id, s])));
              setConnection("live");
              pause = 500;
            } else if (event.case === "change" && event.value.store) {
              const store = event.value.store;
              const gone = event.value.type === ChangeType.DELETED;
              setStores((current) => {
                const next = new Map(current);
                if (gone) next.delete(store.id);
                else next.set(store.id, store);
                return next;
              });
            }
          }
        } catch (error) {
          if (abort.signal.aborted) return;
          if (ConnectError.from(error).code === Code.Unauthenticated) {
            setUnauthenticated(true);
            return;
          }
        }
        if (abort.signal.aborted) return;
        setConnection("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, pause));
        pause = Math.min(pause * 2, 5_000);
      }
    })();
    return () => abort.abort();
  }, [api]);

  return { stores, connection, unauthenticated };
}
