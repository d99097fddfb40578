// Public surface of the shell driver. login-token.ts is deliberately NOT re-exported: only src/guard imports it.
export * from "./errors.ts";
export * from "./job-shells.ts";
export { isLoginToken, type LoginToken } from "./login-token.ts";
export * from "./platform.ts";
export * from "./policy.ts";
export * from "./reply.ts";
export * from "./session.ts";
export * from "./text.ts";
export * from "./transcript.ts";
