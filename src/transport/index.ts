export * from "./channel.ts";
export * from "./connection.ts";
export * from "./errors.ts";
export * from "./fingerprint.ts";
export * from "./local-pty.ts";
export * from "./pool.ts";
export * from "./target.ts";
export * from "./trust-store.ts";
