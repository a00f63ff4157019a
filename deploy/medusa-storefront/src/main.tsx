import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { describe, loadConfig } from "./api";
import "./styles.css";

const root = document.getElementById("root");
if (root) {
  const view = createRoot(root);
  // The store's key and backend come from the server at run time, never from the build.
  loadConfig().then(
    (config) =>
      view.render(
        <StrictMode>
          <App config={config} />
        </StrictMode>,
      ),
    (error: unknown) =>
      view.render(
        <main>
          <p className="error" role="alert">
            The shop could not start: {describe(error)}
          </p>
        </main>,
      ),
  );
}
