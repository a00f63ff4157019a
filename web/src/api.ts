// The gateway's two services, called over gRPC-web from the page's own origin: as a person signed in with the
// organisation's identity provider (the session cookie, which the page never sees, and the session's CSRF token), or
// with an API token.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ProvisionerService } from "./gen/store_platform/v1/provisioner_pb";
import { StatusService } from "./gen/store_platform/v1/status_pb";

const TOKEN_KEY = "store-platform-token";

/** The token of this browser tab's session (kept for the tab only, never in a cookie). */
export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string | null) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** How the page's calls prove who they come from. */
export type Credentials = { kind: "token"; token: string } | { kind: "session"; csrf: string };

/** Who is signed in, as the gateway's /auth/session says. */
export type Who = {
  signedIn: boolean;
  via?: "session" | "token";
  name?: string;
  email?: string;
  tenant?: string;
  role?: "viewer" | "owner" | "admin";
  csrf?: string;
  /** The identity provider's name, when people can sign in with one. */
  provider?: string;
  error?: string;
};

/** Asks the gateway who the page is signed in as: by its session cookie, or by `token`. */
export async function whoAmI(token?: string): Promise<Who> {
  const response = await fetch("/auth/session", {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    cache: "no-store",
  });
  return (await response.json()) as Who;
}

/** Ends the session; the provider's sign-out page, if it has one, is where to go next. */
export async function endSession(csrf: string): Promise<string | null> {
  const response = await fetch("/auth/logout", { method: "POST", headers: { "x-csrf-token": csrf } });
  if (!response.ok) return null;
  const reply = (await response.json()) as { endSessionUrl?: string | null };
  return reply.endSessionUrl ?? null;
}

export function clients(credentials: Credentials) {
  const prove: Interceptor = (next) => (request) => {
    if (credentials.kind === "token") request.header.set("authorization", `Bearer ${credentials.token}`);
    else request.header.set("x-csrf-token", credentials.csrf);
    return next(request);
  };
  const transport = createGrpcWebTransport({
    baseUrl: window.location.origin,
    interceptors: [prove],
  });
  return {
    provisioner: createClient(ProvisionerService, transport),
    status: createClient(StatusService, transport),
  };
}

export type Clients = ReturnType<typeof clients>;

/** The request fields a server message can name ("store_id: must be ..."). */
export const FIELDS = ["store_id", "display_name", "engine", "admin_email"] as const;
export type Field = (typeof FIELDS)[number];

/** A server error split into the field it names (if any) and its message. */
export function describe(error: unknown): { field?: Field; message: string; code?: Code } {
  const connect = ConnectError.from(error);
  const message = connect.rawMessage;
  const field = FIELDS.find((f) => message.startsWith(`${f}: `));
  if (field && connect.code === Code.InvalidArgument) {
    return { field, message: message.slice(field.length + 2), code: connect.code };
  }
  return { message, code: connect.code };
}

export { Code, ConnectError };
