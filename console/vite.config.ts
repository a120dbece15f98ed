import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Served by the API at /console (src/api/console.ts) under a CSP without inline script or style:
// no modulepreload polyfill (an inline helper) and no assets inlined as data: URLs beyond images.
export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  plugins: [react()],
  // `npx vite console`: hot reload, with the API of a running `npm start` behind the same origin
  // (so the session cookie works as in production).
  server: { proxy: { "/api": process.env.MM_API_URL ?? "http://127.0.0.1:8333" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
