// Public surface of the login guard. The only module that sends login commands (and the sanctioned zeroize).
export * from "./budget.ts";
export { CounterUnreadable, type DeviceObservation } from "./device-counter.ts";
export * from "./errors.ts";
export * from "./guard.ts";
export * from "./job-guard.ts";
export * from "./ledger.ts";
export * from "./release.ts";
export * from "./roles.ts";
