// The runbook engine: define runbooks, plan them without connecting, run them step by step with checkpoints.
export * from "./checkpoints.ts";
export * from "./context.ts";
export * from "./errors.ts";
export * from "./json.ts";
export * from "./plan.ts";
export * from "./runbook.ts";
export * from "./runner.ts";
export * from "./state.ts";
export * from "./targets.ts";
