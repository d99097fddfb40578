import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "parsers/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests bind loopback addresses and real servers; two cores, so keep the pool small.
    pool: "forks",
    maxWorkers: 2,
  },
});
