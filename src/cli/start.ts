// `npm start` (bootstrap has run first): the twin of config/demo.yaml, the embedded Redis under .lunafleet/ and the
// daemon; a fleet sweep; the report. Then it keeps running (jobs can be submitted with `lunafleet run`) until
// Ctrl-C / SIGTERM, which stops everything cleanly. `npm start -- --once` exits after the report: 0 when every sweep
// job finished, 1 otherwise. No terminal needed (CI=true works).

import { defaultDataDir } from "../redis/embedded-server.ts";
import { runDemo } from "./demo.ts";

const once = process.argv.includes("--once");
const httpPort = Number(process.env.LUNAFLEET_HTTP_PORT ?? 0);
// The API on its documented port (README), unless LUNAFLEET_API_PORT says otherwise (0 = any free port).
const apiPort = Number(process.env.LUNAFLEET_API_PORT ?? 9465);
// The demo identity provider the console signs in with (twin only), unless LUNAFLEET_IDP_PORT says otherwise.
const idpPort = Number(process.env.LUNAFLEET_IDP_PORT ?? 9466);

async function main(): Promise<number> {
  let demo: Awaited<ReturnType<typeof runDemo>>;
  try {
    demo = await runDemo({
      dataDir: defaultDataDir(),
      httpPort: Number.isInteger(httpPort) ? httpPort : 0,
      apiPort: Number.isInteger(apiPort) && apiPort >= 0 && apiPort < 65_536 ? apiPort : 9465,
      idpPort: Number.isInteger(idpPort) && idpPort >= 0 && idpPort < 65_536 ? idpPort : 9466,
    });
  } catch (err) {
    console.error(`lunafleet: ${(err as Error).message}`);
    return 1;
  }
  const failed = demo.jobs.filter((j) => j.state !== "completed");
  if (once) {
    await demo.stop();
    return failed.length === 0 ? 0 : 1;
  }
  console.log(
    `lunafleet: running; submit more with \`npx lunafleet run <runbook> <target>\`${demo.daemon.api ? ` (or over the API at ${demo.daemon.api.url})` : ""}${demo.consoleUrl ? `, or open the console at ${demo.consoleUrl}` : ""} — Ctrl-C stops.`,
  );
  await new Promise<void>((resolveStop) => {
    const onSignal = (signal: NodeJS.Signals) => {
      console.log(`\nlunafleet: ${signal}: stopping`);
      resolveStop();
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
  await demo.stop();
  console.log("lunafleet: stopped");
  return 0;
}

process.exitCode = await main();
