// CI's last check: the whole test run's output (and any file given) must not contain a twin password.
// Collects every literal credential of the twin fleet files under config/ and greps the given files for them.
// Exit 1 naming the file and the credential's YAML path (never the value) when one is found.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

interface Found {
  path: string;
  value: string;
}

function collectCredentials(node: unknown, path: string, out: Found[]): void {
  if (Array.isArray(node)) {
    node.forEach((item, i) => {
      collectCredentials(item, `${path}[${i}]`, out);
    });
    return;
  }
  if (typeof node !== "object" || node === null) return;
  for (const [key, value] of Object.entries(node)) {
    const here = path ? `${path}.${key}` : key;
    if (key === "credentials" && typeof value === "object" && value !== null) {
      for (const [role, ref] of Object.entries(value)) {
        if (typeof ref === "string" && !ref.startsWith("env:") && !ref.startsWith("file:"))
          out.push({ path: `${here}.${role}`, value: ref });
      }
    } else collectCredentials(value, here, out);
  }
}

const root = join(import.meta.dirname, "..");
const secrets: Found[] = [];
for (const file of readdirSync(join(root, "config")).filter((f) => /\.ya?ml$/.test(f))) {
  const doc = parse(readFileSync(join(root, "config", file), "utf8")) as { twin?: boolean };
  if (doc?.twin === true) collectCredentials(doc, `config/${file}`, secrets);
}
if (secrets.length === 0) {
  console.error("check-output-secrets: no twin credentials found to look for; refusing to pass vacuously");
  process.exit(1);
}

let leaks = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "latin1");
  for (const s of secrets) {
    if (text.includes(s.value)) {
      console.error(`check-output-secrets: ${file} contains the value of ${s.path}`);
      leaks++;
    }
  }
}
console.log(
  `check-output-secrets: ${secrets.length} twin credentials, ${process.argv.length - 2} file(s), ${leaks} leak(s)`,
);
process.exit(leaks === 0 ? 0 : 1);
