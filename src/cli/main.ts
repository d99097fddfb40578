// The `lunafleet` command. Each command group lives in its own module under commands/ (listed in commands/index.ts)
// and registers itself on the program. Only the module of the command being run is loaded; the top-level help is
// built from a summary cached next to the compiled build (first `--help` after a build loads every module once).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { redact } from "../config/secret.ts";
import { COMMAND_MODULES, type Registrar } from "./commands/index.ts";

interface CommandSummary {
  name: string;
  description: string;
}

/** lunafleet's version, from the package.json above this module (source checkout or compiled build alike). */
function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "lunafleet" && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return "unknown";
}

function newProgram(): Command {
  return new Command()
    .name("lunafleet")
    .description("Operate fleets of Thales Luna 7 network HSMs: jobs, login guard, digital twin, evidence")
    .version(version(), "-V, --version", "print lunafleet's version")
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander's own usage errors: exit 2 like other usage errors; help/version: exit 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
}

async function registrars(names: readonly string[]): Promise<Registrar[]> {
  const out = new Set<Registrar>(); // approve/reject/approvals share one module: register it once
  for (const n of names) out.add(await COMMAND_MODULES[n]!());
  return [...out];
}

/** The program with every command registered (help without a cache; tests of the command table). */
async function buildProgram(): Promise<Command> {
  const program = newProgram();
  for (const register of await registrars(Object.keys(COMMAND_MODULES))) register(program);
  return program;
}

/** Only set when running the compiled build: the summary belongs to that build and goes with it. */
const summaryFile = import.meta.url.endsWith(".js")
  ? fileURLToPath(new URL("../../cli-help.json", import.meta.url))
  : undefined;

async function summaries(): Promise<CommandSummary[]> {
  if (summaryFile && existsSync(summaryFile)) return JSON.parse(readFileSync(summaryFile, "utf8"));
  const all = (await buildProgram()).commands.map((c) => ({ name: c.name(), description: c.description() }));
  if (summaryFile) {
    try {
      writeFileSync(summaryFile, JSON.stringify(all));
    } catch {
      // a read-only install: the help is only slower
    }
  }
  return all;
}

async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  const first = args.find((a) => !a.startsWith("-"));
  const wanted = first === "help" ? args[args.indexOf("help") + 1] : first;
  const program = newProgram();
  if (wanted && wanted in COMMAND_MODULES) {
    for (const register of await registrars([wanted])) register(program);
  } else {
    // Top-level help, --version, or an unknown command (commander answers it): names and descriptions suffice.
    for (const s of await summaries()) program.command(s.name).description(s.description);
  }
  await program.parseAsync(argv);
}

// A reader that stops reading (`lunafleet job … | head`) is not an error: stop quietly, as cat does.
for (const stream of [process.stdout, process.stderr])
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });

// Whatever escapes a command is one plain line and exit 1, never a stack trace (LUNAFLEET_DEBUG=1 shows it).
const unexpected = (err: unknown) => {
  const e = err instanceof Error ? err : new Error(String(err));
  if ((e as NodeJS.ErrnoException).code === "EPIPE") process.exit(process.exitCode ?? 0);
  process.stderr.write(
    `lunafleet: ${e.name === "Error" ? "" : `${e.name}: `}${redact(e.message.split("\n")[0] ?? "")}\n`,
  );
  if (process.env.LUNAFLEET_DEBUG) process.stderr.write(`${e.stack ?? ""}\n`);
  process.exit(1);
};
process.on("uncaughtException", unexpected);
process.on("unhandledRejection", unexpected);

try {
  await main(process.argv);
} catch (err) {
  unexpected(err);
}
