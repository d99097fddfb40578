// Structured logs (pino). Every line passes through redact(): a registered secret value never reaches a log, even if
// some error message or field carried one; well-known secret field names are censored on top of that.
import { type DestinationStream, type Logger, pino } from "pino";
import { redact } from "../config/secret.ts";

export type DaemonLogger = Logger;

export interface LoggerOptions {
  level?: string;
  /** Where lines go (default stdout); e.g. pino.destination(file). */
  destination?: DestinationStream;
  name?: string;
}

export function createLogger(opts: LoggerOptions = {}): DaemonLogger {
  return pino(
    {
      name: opts.name ?? "lunafleet",
      level: opts.level ?? process.env.LUNAFLEET_LOG_LEVEL ?? "info",
      redact: {
        paths: [
          "password",
          "*.password",
          "secret",
          "*.secret",
          "credentials",
          "*.credentials",
          "token",
          "*.token",
        ],
        censor: "[redacted]",
      },
      formatters: {
        log(obj) {
          return JSON.parse(redact(JSON.stringify(obj))) as Record<string, unknown>;
        },
      },
      hooks: {
        logMethod(args, method) {
          const redacted = args.map((a) => (typeof a === "string" ? redact(a) : a)) as Parameters<
            typeof method
          >;
          return method.apply(this, redacted);
        },
      },
    },
    opts.destination ?? process.stdout,
  );
}
