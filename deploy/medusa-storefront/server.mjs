// The storefront's server: the built app (dist/) plus the store's run-time configuration, so one image serves
// every store. No dependencies, so the image needs node and dist/ only.
//
//   MEDUSA_PUBLISHABLE_KEY  required: the store's publishable API key (pk_..., public by design)
//   MEDUSA_BACKEND_URL      optional: the Medusa backend's origin; empty means this origin (an ingress routes
//                           /store, /auth, /admin and /app of the store's host to the backend)
//   PORT                    default 8080
//   HOST                    default 0.0.0.0
//
// Routes: GET /healthz (the probes), GET /config.json (read by the app before it starts), and the files of dist/.

import { createReadStream, existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

function fail(message) {
  console.error(`medusa-storefront: ${message}`);
  process.exit(1);
}

const publishableKey = (process.env.MEDUSA_PUBLISHABLE_KEY ?? "").trim();
if (!publishableKey) fail("MEDUSA_PUBLISHABLE_KEY is not set (the store's publishable API key, pk_...)");
// Whatever is here is sent to every visitor: refuse a secret key pasted by mistake.
if (!publishableKey.startsWith("pk_")) fail("MEDUSA_PUBLISHABLE_KEY is not a publishable key (it must start with pk_)");

let backendUrl = (process.env.MEDUSA_BACKEND_URL ?? "").trim().replace(/\/+$/, "");
let backendOrigin = "";
if (backendUrl) {
  let url;
  try {
    url = new URL(backendUrl);
  } catch {
    fail(`MEDUSA_BACKEND_URL is not a URL: "${backendUrl}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") fail("MEDUSA_BACKEND_URL must be http:// or https://");
  backendOrigin = url.origin;
}

const port = Number(process.env.PORT || 8080);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`PORT is not a port number: "${process.env.PORT}"`);
const host = process.env.HOST || "0.0.0.0";

const dist = fileURLToPath(new URL("./dist/", import.meta.url)).replace(/[\\/]+$/, "");
if (!existsSync(join(dist, "index.html"))) fail(`${dist}/index.html is missing: run \`npm run build\` first`);

const config = JSON.stringify({ publishableKey, backendUrl });

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".gif": "image/gif",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
};

// The app talks to its own origin and the backend only; product images may live anywhere (a file service, S3).
const CSP = [
  "default-src 'self'",
  `connect-src 'self'${backendOrigin ? ` ${backendOrigin}` : ""}`,
  "img-src * data: blob:",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const COMMON = { "x-content-type-options": "nosniff", "referrer-policy": "strict-origin-when-cross-origin" };

function send(response, status, type, body, headers = {}) {
  response.writeHead(status, {
    ...COMMON,
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...headers,
  });
  response.end(response.req.method === "HEAD" ? undefined : body);
}

/** The file of dist/ a URL path names, or null if it names none (or tries to leave dist/). */
async function fileFor(pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes("\0")) return null;
  const file = resolve(dist, `.${decoded === "/" ? "/index.html" : decoded}`);
  if (!file.startsWith(dist + sep)) return null;
  try {
    const info = await stat(file);
    return info.isFile() ? { file, info } : null;
  } catch {
    return null;
  }
}

async function handle(request, response) {
  if (request.method !== "GET" && request.method !== "HEAD") {
    send(response, 405, "text/plain; charset=utf-8", "method not allowed\n", { allow: "GET, HEAD" });
    return;
  }
  const { pathname } = new URL(request.url ?? "/", "http://storefront");
  if (pathname === "/healthz") {
    send(response, 200, "text/plain; charset=utf-8", "ok");
    return;
  }
  if (pathname === "/config.json") {
    send(response, 200, "application/json", config);
    return;
  }
  const found = await fileFor(pathname);
  if (!found) {
    send(response, 404, "text/plain; charset=utf-8", "not found\n");
    return;
  }
  const { file, info } = found;
  const type = TYPES[extname(file).toLowerCase()] ?? "application/octet-stream";
  const etag = `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
  const headers = {
    ...COMMON,
    "content-type": type,
    etag,
    // Vite puts a content hash in every name under assets/: those never change. index.html names the current
    // ones, so it is checked on every load.
    "cache-control": pathname.startsWith("/assets/")
      ? "public, max-age=31536000, immutable"
      : file.endsWith(".html")
        ? "no-cache"
        : "public, max-age=300",
  };
  if (type.startsWith("text/html")) headers["content-security-policy"] = CSP;
  if (request.headers["if-none-match"] === etag) {
    response.writeHead(304, headers);
    response.end();
    return;
  }
  response.writeHead(200, { ...headers, "content-length": info.size });
  if (request.method === "HEAD") {
    response.end();
    return;
  }
  createReadStream(file)
    .on("error", (error) => {
      console.error(`medusa-storefront: reading ${file}: ${error.message}`);
      response.destroy();
    })
    .pipe(response);
}

const server = createServer((request, response) => {
  handle(request, response).catch((error) => {
    console.error(`medusa-storefront: ${request.method} ${request.url}: ${error.message}`);
    if (!response.headersSent) send(response, 500, "text/plain; charset=utf-8", "internal error\n");
    else response.destroy();
  });
});
server.on("error", (error) => fail(`cannot listen on ${host}:${port}: ${error.message}`));
server.listen(port, host, () => {
  console.log(
    `medusa-storefront: listening on http://${host}:${port}, backend ${backendUrl || "same origin"}, key ${publishableKey.slice(0, 11)}…`,
  );
});

function stop() {
  // Finish the requests in flight, drop idle keep-alive connections, and do not wait for slow ones for long.
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => {
    server.closeAllConnections();
    process.exit(0);
  }, 5_000).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
