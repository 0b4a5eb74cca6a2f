import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Served by the service at /console (src/modules/console/console-page.ts) under a policy that allows
// no inline script or style and no data: URI: nothing may be inlined into the page.
export default defineConfig({
  base: '/console/',
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    assetsInlineLimit: 0,
    // The page's modulepreload links are added by the entry script, which 'self' allows.
    modulePreload: { polyfill: true },
    sourcemap: false,
    target: 'es2022',
  },
});
