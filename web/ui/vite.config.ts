import { defineConfig } from 'vitest/config';

declare const process: { env: Record<string, string | undefined> };

// The build goes straight into the Go package that embeds it
// (internal/ui/dist, //go:embed all:dist). Asset names carry a content hash,
// so the same sources and lockfile give the same files: CI rebuilds and runs
// `git diff --exit-code internal/ui/dist` to catch a stale committed build.
// base './' keeps every asset URL relative, so the UI works under any
// --web.route-prefix; pages are addressed with the hash (#/explore/metrics?…).
const target = process.env.NXWATCHER_URL ?? 'http://127.0.0.1:19090';

export default defineConfig({
  base: './',
  build: {
    outDir: '../../internal/ui/dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 800,
    reportCompressedSize: true,
  },
  server: {
    proxy: Object.fromEntries(
      ['/api', '/loki', '/-', '/metrics'].map((p) => [p, { target, ws: true, changeOrigin: false }]),
    ),
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
