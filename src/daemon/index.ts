// The lunafleet daemon: queue worker, schedules, metrics, and the `npm start` demo.
export * from "./client.ts";
export * from "./daemon.ts";
export * from "./demo.ts";
export * from "./http.ts";
export * from "./logger.ts";
export * from "./metrics.ts";
export * from "./report.ts";
export * from "./sweep.ts";
