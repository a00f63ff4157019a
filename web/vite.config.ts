import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` serves the dashboard with hot reload and sends gRPC-web to the gateway of `make dev`.
const gateway = process.env.GATEWAY_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/store_platform.v1.": { target: gateway, changeOrigin: true },
    },
  },
  build: { outDir: "dist", sourcemap: true },
});
