// Builds the console into dist/ (scripts/console.sh copies it to
// target/console/, which control/build.rs embeds). `npm run dev` serves it
// with hot reload and sends /api to a control plane on :3000.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, target: "es2022" },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:3000",
      "/docs": "http://127.0.0.1:3000",
    },
  },
});
