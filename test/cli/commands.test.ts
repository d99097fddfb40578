// The lazy command table (src/cli/commands/index.ts) must name exactly the top-level commands its modules register:
// main.ts loads a module only by the name typed, so a missing row would make a command unreachable.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { COMMAND_MODULES } from "../../src/cli/commands/index.ts";

describe("lunafleet command table", () => {
  it("every row's module registers the command under that name", async () => {
    for (const [name, load] of Object.entries(COMMAND_MODULES)) {
      const program = new Command();
      (await load())(program);
      expect(program.commands.map((c) => c.name())).toContain(name);
    }
  });

  it("every command a module registers has a row, and every command module is listed", async () => {
    const registered = new Set<string>();
    const registrars = new Set(await Promise.all(Object.values(COMMAND_MODULES).map((l) => l())));
    for (const register of registrars) {
      const program = new Command();
      register(program);
      for (const c of program.commands) registered.add(c.name());
    }
    expect([...registered].sort()).toEqual(Object.keys(COMMAND_MODULES).sort());
    const modules = readdirSync(join(import.meta.dirname, "../../src/cli/commands")).filter(
      (f) => f.endsWith(".ts") && f !== "index.ts",
    );
    expect(registrars.size).toBe(modules.length);
  });
});
