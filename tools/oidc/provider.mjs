// A real OpenID provider for the tests: the certified `oidc-provider` package, hosted on loopback with the users,
// groups, clients and signing keys a test describes. Its sign-in page checks each user's password; nothing else
// about the provider is ours.
//
//     PROVIDER_CONFIG=config.json node tools/oidc/provider.mjs
//
// The config (JSON):
//   port        the port to listen on (0: any free one)
//   issuer      the issuer to name in tokens (default: http://127.0.0.1:<port>)
//   keys_file   a private JWK set to sign with: read if it exists, else generated (RS256) and written there, so a
//               second provider can sign with the same keys under another issuer
//   clients     oidc-provider client metadata, plus `tenant` and `groups` (claims of its client-credentials tokens)
//               and `token_ttl` (seconds those tokens live)
//   users       [{ sub, password, email, name, groups, tenant }]
//   resources   { "<resource indicator>": "<audience>" }: APIs a client-credentials token may be for
//   ttl         oidc-provider lifetimes in seconds (IdToken, AccessToken, RefreshToken, ...)
//
// It prints one line of JSON when it serves, {"issuer": ..., "port": ...}. Test-only endpoints:
//   POST /_test/rotate  sign with a new key from now on; the old key is no longer published
//   POST /_test/disable a user leaves: body {"sub": ...}; their sign-ins and refresh tokens are refused from now on
//   GET  /_test/counts  how often the keys (JWKS) and the token endpoint were asked for

import { generateKeyPairSync, randomUUID } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { Provider } from "oidc-provider";

const config = JSON.parse(readFileSync(process.env.PROVIDER_CONFIG, "utf8"));
const users = new Map((config.users ?? []).map((user) => [user.sub, user]));
const counts = { jwks: 0, token: 0 };

function newKey() {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...privateKey.export({ format: "jwk" }), kid: randomUUID(), alg: "RS256", use: "sig" };
}

let keys;
if (config.keys_file && existsSync(config.keys_file)) {
  keys = JSON.parse(readFileSync(config.keys_file, "utf8")).keys;
} else {
  keys = [newKey()];
  if (config.keys_file) writeFileSync(config.keys_file, JSON.stringify({ keys }));
}

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;
}

function loginForm(uid, error) {
  return page(
    "Sign in to the test provider",
    `${error ? `<p role="alert">${escape(error)}</p>` : ""}
<form method="post" action="/interaction/${escape(uid)}">
  <label>Username <input name="login" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>`,
  );
}

function build(issuer) {
  const provider = new Provider(issuer, {
    clients: config.clients ?? [],
    jwks: { keys },
    extraClientMetadata: { properties: ["tenant", "groups", "token_ttl"] },
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name"],
      groups: ["groups", "tenant"],
    },
    scopes: ["openid", "offline_access", "email", "profile", "groups", "api"],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Our own pages: the package's defaults load a web font from the Internet.
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => {
          ctx.body = page(
            "Sign out of the test provider?",
            `${form}<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`,
          );
        },
        postLogoutSuccessSource: (ctx) => {
          ctx.body = page("Signed out", "<p>You are signed out of the test provider.</p>");
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx, resource) => {
          const audience = (config.resources ?? {})[resource];
          if (!audience) throw new Error(`unknown resource ${resource}`);
          return { scope: "api", audience, accessTokenFormat: "jwt", jwt: { sign: { alg: "RS256" } } };
        },
      },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx, sub) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: () => ({
          sub,
          email: user.email,
          email_verified: true,
          name: user.name,
          groups: user.groups ?? [],
          ...(user.tenant ? { tenant: user.tenant } : {}),
        }),
      };
    },
    extraTokenClaims: (_ctx, token) => {
      if (token.kind !== "ClientCredentials") return undefined;
      const client = (config.clients ?? []).find((c) => c.client_id === token.clientId) ?? {};
      return {
        ...(client.tenant ? { tenant: client.tenant } : {}),
        ...(client.groups ? { groups: client.groups } : {}),
      };
    },
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    ttl: {
      ClientCredentials: (_ctx, _token, client) => client.token_ttl ?? 600,
      ...(config.ttl ?? {}),
    },
    cookies: { keys: [randomUUID()] },
    renderError: (ctx, out) => {
      ctx.type = "html";
      ctx.body = page("Sign-in failed", `<pre>${escape(JSON.stringify(out))}</pre>`);
    },
  });
  provider.proxy = false;
  return provider;
}

async function readForm(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

// Our sign-in page: the user's password is checked, and the grant covers what the client asked for.
async function interaction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;
  if (req.method === "GET" && prompt.name === "login") {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(loginForm(uid));
    return;
  }
  if (req.method === "POST" && prompt.name === "login") {
    const form = await readForm(req);
    const user = users.get(form.login);
    if (!user || user.password !== form.password) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(loginForm(uid, "Wrong username or password."));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
    return;
  }
  // Consent: granted for what was asked.
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scope] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scope.join(" "));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

// The test may stop reading once it has the first line.
process.stdout.on("error", () => {});

let current;
const server = http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/_test/rotate" && req.method === "POST") {
      keys = [newKey()];
      current = build(current.issuer);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ kid: keys[0].kid }));
      return;
    }
    if (path === "/_test/disable" && req.method === "POST") {
      let body = "";
      for await (const chunk of req) body += chunk;
      users.delete(JSON.parse(body).sub);
      res.writeHead(204);
      res.end();
      return;
    }
    if (path === "/_test/counts") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(counts));
      return;
    }
    if (path.startsWith("/interaction/")) {
      await interaction(current, req, res);
      return;
    }
    if (path.endsWith("/jwks")) counts.jwks += 1;
    if (path.endsWith("/token")) counts.token += 1;
    current.callback()(req, res);
  } catch (error) {
    console.error(error);
    if (!res.headersSent) res.writeHead(500);
    res.end(String(error));
  }
});

server.listen(config.port ?? 0, "127.0.0.1", () => {
  const { port } = server.address();
  const issuer = config.issuer ?? `http://127.0.0.1:${port}`;
  current = build(issuer);
  console.log(JSON.stringify({ issuer, port }));
});
