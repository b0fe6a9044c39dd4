import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__test__/**/*.test.ts'],
    globalSetup: ['__test__/global-tmp.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
