// Builds the settings window into ui/dist, which the Tauri shell embeds
// (src-tauri/tauri.conf.json: frontendDist "../ui/dist", devUrl http://localhost:1420).
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { svelteTesting } from '@testing-library/svelte/vite';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [svelte(), svelteTesting()],
  // Keep the Rust compiler's output visible when both run in one terminal.
  clearScreen: false,
  server: {
    port: 1420,
    strictPort: true,
    watch: { ignored: ['**/src-tauri/**', '**/target/**'] },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // WebKitGTK on Debian 12 and newer is at least as capable as Safari 15.
    target: ['es2021', 'safari15'],
    // A strict CSP (default-src 'self') refuses data: URLs, so every asset stays a file.
    assetsInlineLimit: 0,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
    setupFiles: ['src/test/setup.ts'],
  },
});
