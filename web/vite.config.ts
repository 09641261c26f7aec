import { defineConfig } from "vite";

// Relative asset paths: the page is served from wherever the gateway (or any
// static server) puts it.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
  },
  server: { host: "127.0.0.1" },
  preview: { host: "127.0.0.1" },
});
