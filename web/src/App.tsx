import { createContext, useCallback, useContext, useEffect, useMemo, useState, type FormEvent } from "react";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  clients,
  Code,
  describe,
  endSession,
  saveToken,
  savedToken,
  whoAmI,
  type Clients,
  type Credentials,
  type Field,
  type Who,
} from "./api";
import type { DeletedStore, EngineVersions } from "./gen/store_platform/v1/provisioner_pb";
import {
  Engine,
  OperationKind,
  OperationState,
  Phase,
  StepState,
  type Store,
} from "./gen/store_platform/v1/store_pb";
import { BackupKind, BackupState, type Backup } from "./gen/store_platform/v1/backup_pb";
import { useStores, type Connection } from "./useStores";

/** Whether the signed-in role may change stores (owners and administrators); a viewer only looks. */
const CanChange = createContext(true);

type Signed = { who: Who; credentials: Credentials };

export function App() {
  // undefined: still asking the gateway; null: nobody signed in.
  const [signed, setSigned] = useState<Signed | null | undefined>(undefined);
  const [provider, setProvider] = useState<string | undefined>(undefined);
  useEffect(() => {
    void (async () => {
      try {
        const who = await whoAmI();
        setProvider(who.provider);
        if (who.signedIn && who.csrf) {
          setSigned({ who, credentials: { kind: "session", csrf: who.csrf } });
          return;
        }
        const token = savedToken();
        if (token) {
          const byToken = await whoAmI(token);
          if (byToken.signedIn) {
            setSigned({ who: byToken, credentials: { kind: "token", token } });
            return;
          }
          saveToken(null);
        }
      } catch {
        // The gateway does not answer: the sign-in page says what it can.
      }
      setSigned(null);
    })();
  }, []);
  const signOut = useCallback(async () => {
    if (signed?.credentials.kind === "session") {
      const next = await endSession(signed.credentials.csrf);
      if (next) {
        window.location.assign(next);
        return;
      }
    }
    saveToken(null);
    setSigned(null);
  }, [signed]);
  if (signed === undefined) {
    return (
      <main className="narrow">
        <h1>store-platform</h1>
        <p className="muted">Loading…</p>
      </main>
    );
  }
  if (!signed) {
    return (
      <SignIn
        provider={provider}
        onSignedIn={(token, who) => {
          saveToken(token);
          setSigned({ who, credentials: { kind: "token", token } });
        }}
      />
    );
  }
  return (
    <CanChange.Provider value={signed.who.role !== "viewer"}>
      <Dashboard key={signed.who.name} signed={signed} onSignOut={() => void signOut()} />
    </CanChange.Provider>
  );
}

function SignIn(props: { provider?: string; onSignedIn: (token: string, who: Who) => void }) {
  const [token, setToken] = useState("");
  // A sign-in the gateway turned away comes back with its reason.
  const [error, setError] = useState<string | null>(
    () => new URLSearchParams(window.location.search).get("signin_error"),
  );
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (window.location.search) window.history.replaceState(null, "", window.location.pathname);
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const who = await whoAmI(token.trim());
      if (!who.signedIn) throw new Error(who.error ?? "the API token is not valid");
      props.onSignedIn(token.trim(), who);
    } catch (e) {
      setError(e instanceof Error ? e.message : describe(e).message);
    } finally {
      setBusy(false);
    }
  }

  const returnTo = window.location.pathname;
  return (
    <main className="narrow">
      <h1>store-platform</h1>
      {error && (
        <p id="sign-in-error" className="error" role="alert">
          {error}
        </p>
      )}
      {props.provider && (
        <p>
          <a className="button" href={`/auth/login?return_to=${encodeURIComponent(returnTo)}`}>
            Sign in with {props.provider}
          </a>
        </p>
      )}
      <form onSubmit={submit} aria-labelledby="sign-in-title">
        <h2 id="sign-in-title">{props.provider ? "Or use an API token" : "Sign in"}</h2>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="current-password"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "sign-in-error" : undefined}
          required
        />
        <button type="submit" disabled={busy || !token.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

function Dashboard({ signed, onSignOut }: { signed: Signed; onSignOut: () => void }) {
  const api = useMemo(() => clients(signed.credentials), [signed]);
  const canChange = useContext(CanChange);
  const { stores, connection, unauthenticated } = useStores(api);
  useEffect(() => {
    if (unauthenticated) onSignOut();
  }, [unauthenticated, onSignOut]);
  // The versions the platform offers, asked once: which stores are behind its default.
  const [versions, setVersions] = useState<EngineVersions[]>([]);
  useEffect(() => {
    api.provisioner
      .listVersions({})
      .then((reply) => setVersions(reply.engines))
      .catch(() => setVersions([]));
  }, [api]);
  const sorted = [...stores.values()].sort(
    (a, b) => seconds(b.createTime) - seconds(a.createTime) || a.id.localeCompare(b.id),
  );
  const { who } = signed;
  return (
    <main>
      <header className="top">
        <h1>store-platform</h1>
        <ConnectionBadge connection={connection} />
        <span className="muted small" data-testid="who">
          {who.email || who.name} · {who.role} · {who.role === "admin" ? "all tenants" : `tenant ${who.tenant}`}
        </span>
        <button type="button" className="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {canChange && <CreateStore api={api} />}
      <DeletedStores api={api} stores={stores} />
      <section aria-labelledby="stores-title">
        <h2 id="stores-title">Stores</h2>
        {sorted.length === 0 ? (
          <p className="muted">{connection === "live" ? "No stores yet." : "Loading…"}</p>
        ) : (
          <ul className="stores" aria-label="Stores">
            {sorted.map((store) => (
              <StoreCard
                key={store.id}
                store={store}
                api={api}
                latest={versions.find((v) => v.engine === store.engine)?.defaultVersion}
              />
            ))}
          </ul>
        )}
      </section>
    </main>
  );
}

function ConnectionBadge({ connection }: { connection: Connection }) {
  const text = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" }[connection];
  return (
    <span className={`badge connection-${connection}`} role="status" aria-live="polite">
      {text}
    </span>
  );
}

type FieldErrors = Partial<Record<Field, string>>;

function CreateStore({ api }: { api: Clients }) {
  const [storeId, setStoreId] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [engine, setEngine] = useState(Engine.WOOCOMMERCE);
  const [adminEmail, setAdminEmail] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setErrors({});
    setFormError(null);
    try {
      await api.provisioner.createStore({ storeId, displayName, engine, adminEmail });
      setStoreId("");
      setDisplayName("");
      setAdminEmail("");
    } catch (e) {
      const { field, message } = describe(e);
      if (field) setErrors({ [field]: message });
      else setFormError(message);
    } finally {
      setBusy(false);
    }
  }

  // The server is the judge of what is valid; the browser only marks fields it must not leave empty.
  return (
    <section aria-labelledby="create-title">
      <h2 id="create-title">Create a store</h2>
      <form className="create" onSubmit={submit} noValidate>
        <TextField
          id="store_id"
          label="Store id"
          hint="Lowercase letters, digits and dashes; it becomes the store's subdomain"
          value={storeId}
          onChange={setStoreId}
          error={errors.store_id}
        />
        <TextField
          id="display_name"
          label="Name"
          value={displayName}
          onChange={setDisplayName}
          error={errors.display_name}
        />
        <div className="field">
          <label htmlFor="engine">Engine</label>
          <select
            id="engine"
            value={engine}
            onChange={(e) => setEngine(Number(e.target.value) as Engine)}
            aria-invalid={errors.engine ? true : undefined}
            aria-describedby={errors.engine ? "engine-error" : undefined}
          >
            <option value={Engine.WOOCOMMERCE}>WooCommerce</option>
            <option value={Engine.MEDUSA}>Medusa</option>
          </select>
          {errors.engine && (
            <p id="engine-error" className="error">
              {errors.engine}
            </p>
          )}
        </div>
        <TextField
          id="admin_email"
          label="Admin email"
          type="email"
          value={adminEmail}
          onChange={setAdminEmail}
          error={errors.admin_email}
        />
        {formError && (
          <p className="error" role="alert">
            {formError}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create store"}
        </button>
      </form>
    </section>
  );
}

function TextField(props: {
  id: Field;
  label: string;
  hint?: string;
  type?: string;
  value: string;
  onChange: (value: string) => void;
  error?: string;
}) {
  const described = [props.hint && `${props.id}-hint`, props.error && `${props.id}-error`]
    .filter(Boolean)
    .join(" ");
  return (
    <div className="field">
      <label htmlFor={props.id}>{props.label}</label>
      <input
        id={props.id}
        type={props.type ?? "text"}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-invalid={props.error ? true : undefined}
        aria-describedby={described || undefined}
      />
      {props.hint && (
        <p id={`${props.id}-hint`} className="muted small">
          {props.hint}
        </p>
      )}
      {props.error && (
        <p id={`${props.id}-error`} className="error" role="alert">
          {props.error}
        </p>
      )}
    </div>
  );
}

const PHASES: Record<Phase, string> = {
  [Phase.UNSPECIFIED]: "unknown",
  [Phase.PENDING]: "pending",
  [Phase.PROVISIONING]: "provisioning",
  [Phase.READY]: "ready",
  [Phase.FAILED]: "failed",
  [Phase.DELETING]: "deleting",
  [Phase.RESTORING]: "restoring",
  [Phase.UPGRADING]: "upgrading",
  [Phase.SUSPENDED]: "paused",
  [Phase.RESUMING]: "resuming",
};

const STEP_MARKS: Record<StepState, string> = {
  [StepState.UNSPECIFIED]: "·",
  [StepState.PENDING]: "○",
  [StepState.RUNNING]: "◐",
  [StepState.SUCCEEDED]: "✓",
  [StepState.FAILED]: "✗",
};

const STEP_STATES: Record<StepState, string> = {
  [StepState.UNSPECIFIED]: "unknown",
  [StepState.PENDING]: "pending",
  [StepState.RUNNING]: "running",
  [StepState.SUCCEEDED]: "done",
  [StepState.FAILED]: "failed",
};

function seconds(time?: Timestamp): number {
  return time ? Number(time.seconds) : 0;
}

/** What an owner does after the first order, in short; docs/medusa.md and docs/woocommerce.md say it in full. */
function RunningYourShop({ engine }: { engine: Engine }) {
  return (
    <details className="help">
      <summary>Running your shop</summary>
      {engine === Engine.MEDUSA ? (
        <ul>
          <li>
            Products: in the admin, Products → Create. A new product ships with the store&apos;s shipping option and is
            listed at its warehouse with nothing in stock: enter the quantity under the variant&apos;s Inventory, or
            turn &ldquo;Manage inventory&rdquo; off to sell it without a count.
          </li>
          <li>Images you upload are kept in the store&apos;s own storage and served at its address.</li>
          <li>
            Prices include tax at each country&apos;s standard rate (the platform&apos;s setting); the checkout shows
            the tax included.
          </li>
        </ul>
      ) : (
        <ul>
          <li>Products: in the admin, Products → Add New; set a price and publish it.</li>
          <li>
            Scheduled work (analytics, stock holds, cleanups) runs every few minutes; mail goes through the
            platform&apos;s relay if it has one, and is off otherwise.
          </li>
          <li>The admin makes no call to the internet: updates come with the platform&apos;s upgrades.</li>
        </ul>
      )}
    </details>
  );
}

const BACKUP_KINDS: Record<BackupKind, string> = {
  [BackupKind.UNSPECIFIED]: "backup",
  [BackupKind.SCHEDULED]: "scheduled",
  [BackupKind.ON_DEMAND]: "on demand",
  [BackupKind.PRE_RESTORE]: "before a restore",
  [BackupKind.PRE_UPGRADE]: "before an upgrade",
};

const BACKUP_STATES: Record<BackupState, string> = {
  [BackupState.UNSPECIFIED]: "unknown",
  [BackupState.RUNNING]: "running",
  [BackupState.SUCCEEDED]: "done",
  [BackupState.FAILED]: "failed",
};

/** Bytes for people: 1.2 MB. */
function size(bytes: bigint): string {
  const value = Number(bytes);
  if (value < 1000) return `${value} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let scaled = value / 1000;
  let unit = 0;
  while (scaled >= 1000 && unit < units.length - 1) {
    scaled /= 1000;
    unit += 1;
  }
  return `${scaled.toFixed(1)} ${units[unit]}`;
}

function when(backup: Backup): string {
  return backup.createTime ? timestampDate(backup.createTime).toLocaleString() : "—";
}

/** The store's backups: back up now, the list (newest first), and restoring one in place after a confirmation. */
function Backups({ store, api }: { store: Store; api: Clients }) {
  const [backups, setBackups] = useState<Backup[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [restoring, setRestoring] = useState<Backup | null>(null);
  const [cloning, setCloning] = useState<Backup | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      const reply = await api.provisioner.listBackups({ storeId: store.id });
      setBackups(reply.backups);
      setError(null);
    } catch (e) {
      setError(describe(e).message);
    }
  }, [api, store.id]);

  // Once shown, the list follows the store: a restore's end changes it, and a running backup ends on its own.
  const shown = backups !== null;
  const running = backups?.some((b) => b.state === BackupState.RUNNING) ?? false;
  useEffect(() => {
    if (shown) void load();
    // Only the phase's changes reload it (not the first showing, which its toggle loads).
  }, [store.phase]);
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => void load(), 5000);
    return () => clearInterval(timer);
  }, [running, load]);

  async function act(action: () => Promise<unknown>) {
    setBusy(true);
    setError(null);
    try {
      await action();
      await load();
    } catch (e) {
      setError(describe(e).message);
    } finally {
      setBusy(false);
    }
  }

  const canChange = useContext(CanChange);
  const ready = store.phase === Phase.READY && canChange;
  return (
    <details
      className="backups"
      onToggle={(event) => {
        if ((event.currentTarget as HTMLDetailsElement).open) void load();
      }}
    >
      <summary>Backups</summary>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {ready && (
        <button
          type="button"
          className="secondary"
          disabled={busy}
          onClick={() => act(() => api.provisioner.backupStore({ storeId: store.id }))}
        >
          Back up now
        </button>
      )}{" "}
      <button type="button" className="secondary" disabled={busy} onClick={() => void load()}>
        Refresh
      </button>
      {backups && backups.length === 0 && <p className="muted small">No backups yet.</p>}
      {backups && backups.length > 0 && (
        <ul className="backup-list" aria-label="Backups">
          {backups.map((backup) => (
            <li key={backup.id} className={`backup backup-${BACKUP_STATES[backup.state]}`}>
              {when(backup)} · {BACKUP_KINDS[backup.kind]} · {BACKUP_STATES[backup.state]}
              {backup.state === BackupState.SUCCEEDED && <> · {size(backup.sizeBytes)}</>}
              {backup.message && <span className="muted small"> — {backup.message}</span>}
              {ready && backup.state === BackupState.SUCCEEDED && (
                <>
                  {" "}
                  <button type="button" className="secondary" onClick={() => setRestoring(backup)}>
                    Restore…
                  </button>
                </>
              )}
              {canChange && backup.state === BackupState.SUCCEEDED && (
                <>
                  {" "}
                  <button type="button" className="secondary" onClick={() => setCloning(backup)}>
                    Clone to a new store…
                  </button>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      {restoring && (
        <p role="group" aria-label="Confirm restore">
          <span>
            Replace {store.id}&apos;s database and files (orders, customers, products, uploads) with the backup of{" "}
            {when(restoring)}? Everything since then is replaced; the store is backed up as it is first, and is
            offline while it is restored.
          </span>{" "}
          <button
            type="button"
            className="danger"
            autoFocus
            onClick={() =>
              act(async () => {
                await api.provisioner.restoreStore({ storeId: store.id, backupId: restoring.id });
                setRestoring(null);
              })
            }
          >
            Yes, restore
          </button>{" "}
          <button type="button" className="secondary" onClick={() => setRestoring(null)}>
            Cancel
          </button>
        </p>
      )}
      {cloning && (
        <CloneForm
          api={api}
          from={{
            storeId: store.id,
            displayName: store.displayName,
            engine: store.engine,
            adminEmail: store.adminEmail,
          }}
          backup={cloning}
          onDone={() => setCloning(null)}
        />
      )}
    </details>
  );
}

/** What a clone is made from: a store (living or deleted) and one of its backups. */
type CloneFrom = { storeId: string; displayName: string; engine: Engine; adminEmail: string };

/** A new store made from `backup`: its data, under a new id (its own address and passwords). */
function CloneForm(props: { api: Clients; from: CloneFrom; backup: Backup; onDone: () => void }) {
  const { api, from, backup, onDone } = props;
  const [storeId, setStoreId] = useState("");
  const [displayName, setDisplayName] = useState(`${from.displayName} (copy)`);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputId = `clone-${from.storeId}-${backup.id.slice(0, 8)}`;

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.provisioner.createStore({
        storeId,
        displayName,
        engine: from.engine,
        adminEmail: from.adminEmail,
        source: { storeId: from.storeId, backupId: backup.id },
      });
      onDone();
    } catch (e) {
      const { field, message } = describe(e);
      const label = field === "store_id" ? "New store id" : field === "display_name" ? "New name" : field;
      setError(field ? `${label}: ${message}` : message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="clone" aria-label="Clone to a new store" onSubmit={submit} noValidate>
      <p className="small">
        A new store with {from.storeId}&apos;s orders, customers, products and uploads as of {when(backup)}, at its
        own address and with its own passwords. {from.storeId} itself is not changed.
      </p>
      <label htmlFor={inputId}>New store id</label>{" "}
      <input id={inputId} value={storeId} onChange={(e) => setStoreId(e.target.value)} autoFocus />{" "}
      <label htmlFor={`${inputId}-name`}>New name</label>{" "}
      <input id={`${inputId}-name`} value={displayName} onChange={(e) => setDisplayName(e.target.value)} />{" "}
      <button type="submit" disabled={busy}>
        {busy ? "Cloning…" : "Clone"}
      </button>{" "}
      <button type="button" className="secondary" onClick={onDone}>
        Cancel
      </button>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

/** The tenant's deleted stores whose backups are kept, each of which can be brought back until then. */
function DeletedStores({ api, stores }: { api: Clients; stores: Map<string, Store> }) {
  const [deleted, setDeleted] = useState<DeletedStore[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setDeleted((await api.provisioner.listDeletedStores({})).stores);
      setError(null);
    } catch (e) {
      const { code, message } = describe(e);
      // Backups off: nothing can be brought back, and there is nothing to show.
      if (code === Code.FailedPrecondition) setDeleted([]);
      else setError(message);
    }
  }, [api]);
  // Asked again whenever a store appears or goes (one brought back leaves the list; one deleted joins it).
  const ids = [...stores.keys()].sort().join(",");
  useEffect(() => {
    void load();
  }, [load, ids]);

  async function bringBack(store: DeletedStore) {
    setBusy(store.storeId);
    setError(null);
    try {
      const { backups } = await api.provisioner.listBackups({ storeId: store.storeId });
      const newest = backups.find((b) => b.state === BackupState.SUCCEEDED);
      if (!newest) throw new Error(`${store.storeId} has no backup to bring back`);
      await api.provisioner.createStore({
        storeId: store.storeId,
        displayName: store.displayName,
        engine: store.engine,
        adminEmail: store.adminEmail,
        source: { storeId: store.storeId, backupId: newest.id },
      });
      await load();
    } catch (e) {
      setError(e instanceof Error && !("code" in e) ? e.message : describe(e).message);
    } finally {
      setBusy(null);
    }
  }

  const canChange = useContext(CanChange);
  // A store of the same id exists again (brought back, or on its way back): it is no longer deleted, although the
  // platform lists it until the store is prepared again, and nothing reloads the list then.
  const kept = deleted.filter((store) => !stores.has(store.storeId));
  if (kept.length === 0 && !error) return null;
  return (
    <section aria-labelledby="deleted-title">
      <h2 id="deleted-title">Deleted stores</h2>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <ul className="deleted" aria-label="Deleted stores">
        {kept.map((store) => (
          <li key={store.storeId}>
            <strong>{store.displayName || store.storeId}</strong> <code>{store.storeId}</code> · deleted{" "}
            {store.deleteTime ? timestampDate(store.deleteTime).toLocaleString() : "—"} · backups kept until{" "}
            {store.backupsKeptUntil ? timestampDate(store.backupsKeptUntil).toLocaleDateString() : "—"}{" "}
            {canChange && (
              <button
                type="button"
                className="secondary"
                disabled={busy !== null}
                onClick={() => void bringBack(store)}
              >
                {busy === store.storeId ? "Bringing back…" : "Bring back"}
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** What the store's latest operation is, in a few words. */
function operationTitle(store: Store): string {
  const operation = store.operation!;
  switch (operation.kind) {
    case OperationKind.RESTORE:
      return `Restore of backup ${operation.backupId.slice(0, 8)}`;
    case OperationKind.UPGRADE:
      return `Upgrade from ${operation.fromVersion || "an unrecorded version"} to ${operation.toVersion}`;
    case OperationKind.SUSPEND:
      return "Pause";
    case OperationKind.RESUME:
      return "Resume";
    case OperationKind.RECONFIGURE:
      return `New platform settings (generation ${operation.settingsGeneration})`;
    default:
      return "Operation";
  }
}

const OPERATION_KINDS: Record<OperationKind, string> = {
  [OperationKind.UNSPECIFIED]: "Operation",
  [OperationKind.RESTORE]: "Restore",
  [OperationKind.UPGRADE]: "Upgrade",
  [OperationKind.SUSPEND]: "Pause",
  [OperationKind.RESUME]: "Resume",
  [OperationKind.RECONFIGURE]: "Settings",
};

const OPERATION_ENDS: Partial<Record<OperationState, string>> = {
  [OperationState.FAILED]: " failed",
  [OperationState.ROLLED_BACK]: " failed and was rolled back",
};

/** The store's latest operation: its steps, live, and how it ended if it did not succeed. */
function OperationView({ store }: { store: Store }) {
  const operation = store.operation;
  if (!operation) return null;
  const ended = OPERATION_ENDS[operation.state];
  if (operation.state !== OperationState.RUNNING && !ended) return null;
  const title = operationTitle(store);
  const kind = OPERATION_KINDS[operation.kind];
  return (
    <div className="operation" aria-label={kind}>
      <p className="small">
        {title}
        {ended ?? ""}
      </p>
      {ended && operation.message && <p className="muted small">{operation.message}</p>}
      <ol className="steps" aria-label={`${kind} steps`}>
        {operation.steps.map((step) => (
          <li key={step.name} className={`step step-${STEP_STATES[step.state]}`}>
            <span aria-hidden="true">{STEP_MARKS[step.state]}</span> {step.name}{" "}
            <span className="visually-hidden">{STEP_STATES[step.state]}</span>
            {step.message && <span className="muted small"> — {step.message}</span>}
          </li>
        ))}
      </ol>
    </div>
  );
}

function StoreCard({ store, api, latest }: { store: Store; api: Clients; latest?: string }) {
  const [credentials, setCredentials] = useState<{ username: string; password: string } | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const canChange = useContext(CanChange);
  const phase = PHASES[store.phase];
  const done = store.steps.filter((s) => s.state === StepState.SUCCEEDED).length;
  // Behind the platform's default version (a store with no recorded version is too: it predates versions).
  const behind = latest !== undefined && latest !== store.version;

  async function act(action: () => Promise<unknown>) {
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(describe(e).message);
    }
  }

  return (
    // Named as its heading reads, name and id: a clone has its source's name.
    <li
      className={`store phase-${phase}`}
      aria-label={`Store ${store.displayName ? `${store.displayName} (${store.id})` : store.id}`}
    >
      <div className="store-head">
        <h3>
          {store.displayName || store.id} <span className="muted small">{store.id}</span>
        </h3>
        <span className={`badge phase phase-${phase}`} data-testid="phase">
          {phase}
        </span>
      </div>
      <p className="muted small">
        {store.engine === Engine.MEDUSA ? "Medusa" : "WooCommerce"}
        {store.createTime && <> · created {timestampDate(store.createTime).toLocaleString()}</>}
        {store.tenant && <> · tenant {store.tenant}</>}
        {store.version && <> · version {store.version}</>}
        {behind && (
          <>
            {" "}
            <span className="badge" data-testid="behind">
              {latest} available
            </span>
          </>
        )}
      </p>
      <div>
        <progress
          max={Math.max(store.steps.length, 1)}
          value={done}
          aria-label={`${done} of ${store.steps.length} steps done`}
        />
        <ol className="steps" aria-label="Steps">
          {store.steps.map((step) => (
            <li key={step.name} className={`step step-${STEP_STATES[step.state]}`}>
              <span aria-hidden="true">{STEP_MARKS[step.state]}</span> {step.name}{" "}
              <span className="visually-hidden">{STEP_STATES[step.state]}</span>
              {step.message && !store.failureReason.includes(step.message) && (
                <span className="muted small"> — {step.message}</span>
              )}
            </li>
          ))}
        </ol>
      </div>
      {store.failureReason && store.phase === Phase.FAILED && (
        <p className="error" role="alert">
          {store.failureReason}
        </p>
      )}
      {store.phase === Phase.READY && (
        <p className="links">
          <a href={store.storefrontUrl} target="_blank" rel="noreferrer">
            Storefront
          </a>{" "}
          <a href={store.adminUrl} target="_blank" rel="noreferrer">
            Admin
          </a>
        </p>
      )}
      {store.phase === Phase.READY && <RunningYourShop engine={store.engine} />}
      <OperationView store={store} />
      {/* Kept through every operation, so an open panel stays open while the store is restored, upgraded, paused or
          resumed. */}
      {[Phase.READY, Phase.RESTORING, Phase.UPGRADING, Phase.SUSPENDED, Phase.RESUMING].includes(store.phase) && (
        <Backups store={store} api={api} />
      )}
      {credentials && (
        <dl className="credentials" aria-label="Admin credentials">
          <dt>Username</dt>
          <dd>
            <code>{credentials.username}</code>
          </dd>
          <dt>Password</dt>
          <dd>
            <code data-testid="password">{credentials.password}</code>
          </dd>
        </dl>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {canChange && (
        <div className="actions">
          {store.phase === Phase.FAILED && (
            <button type="button" onClick={() => act(() => api.provisioner.retryStore({ storeId: store.id }))}>
              Retry
            </button>
          )}
          {store.phase === Phase.READY && behind && (
            <button
              type="button"
              className="secondary"
              onClick={() => act(() => api.provisioner.upgradeStore({ storeId: store.id, version: latest }))}
            >
              Upgrade to {latest}
            </button>
          )}
          {store.phase === Phase.READY && (
            <button
              type="button"
              className="secondary"
              onClick={() => act(() => api.provisioner.suspendStore({ storeId: store.id }))}
            >
              Pause
            </button>
          )}
          {store.phase === Phase.SUSPENDED && (
            <button type="button" onClick={() => act(() => api.provisioner.resumeStore({ storeId: store.id }))}>
              Resume
            </button>
          )}
          {store.phase !== Phase.DELETING &&
            (credentials ? (
              <button type="button" className="secondary" onClick={() => setCredentials(null)}>
                Hide admin credentials
              </button>
            ) : (
              <button
                type="button"
                className="secondary"
                onClick={() =>
                  act(async () => {
                    const reply = await api.provisioner.getStoreCredentials({ storeId: store.id });
                    setCredentials({ username: reply.username, password: reply.password });
                  })
                }
              >
                Show admin credentials
              </button>
            ))}
          {store.phase !== Phase.DELETING &&
            (confirming ? (
              <span role="group" aria-label="Confirm deletion">
                <span>Delete {store.id} and everything in it?</span>{" "}
                <button
                  type="button"
                  className="danger"
                  autoFocus
                  onClick={() =>
                    act(async () => {
                      await api.provisioner.deleteStore({ storeId: store.id });
                      setConfirming(false);
                      setCredentials(null);
                    })
                  }
                >
                  Yes, delete
                </button>{" "}
                <button type="button" className="secondary" onClick={() => setConfirming(false)}>
                  Cancel
                </button>
              </span>
            ) : (
              <button type="button" className="danger" onClick={() => setConfirming(true)}>
                Delete
              </button>
            ))}
        </div>
      )}
    </li>
  );
}
