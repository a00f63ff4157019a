// The gateway's two services, called over gRPC-web from the page's own origin with the signed-in API token.

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

export function clients(token: string) {
  const bearer: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  const transport = createGrpcWebTransport({
    baseUrl: window.location.origin,
    interceptors: [bearer],
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
