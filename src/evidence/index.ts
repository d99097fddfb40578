export * from "./canonical.ts";
export * from "./copies.ts";
export * from "./log.ts";
export * from "./record.ts";
export * from "./sanitize.ts";
export * from "./verify.ts";
