import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` serves the app with hot reload against a Medusa backend (MEDUSA_BACKEND_URL, by default the
// `medusa start` of deploy/medusa): /store is proxied there, and config.json is answered here the way server.mjs
// answers it in production, with an empty backend URL (same origin, through the proxy).
const backend = process.env.MEDUSA_BACKEND_URL ?? "http://127.0.0.1:9000";

function devConfig(): Plugin {
  return {
    name: "storefront-dev-config",
    configureServer(server) {
      server.middlewares.use("/config.json", (_request, response) => {
        response.setHeader("content-type", "application/json");
        response.end(JSON.stringify({ publishableKey: process.env.MEDUSA_PUBLISHABLE_KEY ?? "", backendUrl: "" }));
      });
    },
  };
}

export default defineConfig({
  // Relative asset paths: the same build works at / and under a path prefix.
  base: "./",
  plugins: [react(), devConfig()],
  server: {
    proxy: { "/store": { target: backend, changeOrigin: true } },
  },
  build: { outDir: "dist", sourcemap: true },
});
