import { defineConfig } from 'vite';

// The console is served by arca-api from the same origin as /v1 (functions/api/src/console.rs
// embeds dist/). `vite dev` proxies /v1 to a local `arca server` (ARCA_API_URL).
export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No inline scripts or styles: the Content-Security-Policy allows 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: { proxy: { '/v1': process.env.ARCA_API_URL ?? 'http://127.0.0.1:8080' } },
});
