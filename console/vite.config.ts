import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Served by the API at /console (src/api/console.ts) under a CSP without inline script or style:
// no modulepreload polyfill (an inline helper) and no assets inlined as data: URLs beyond images.
export default defineConfig({
  root: import.meta.dirname,
  base: "/console/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
