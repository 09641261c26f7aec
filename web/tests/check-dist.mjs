// Checks that the committed web/dist is what the sources build to now:
// builds into a temporary folder and compares file by file.
// `npm run check-dist` (after `npm ci`); exits 1 when dist is stale.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("..", import.meta.url));
const dist = join(web, "dist");
const fresh = mkdtempSync(join(tmpdir(), "confab-dist-"));

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

const files = (dir) => walk(dir).map((p) => relative(dir, p)).sort();

try {
  execFileSync("npm", ["run", "gen"], { cwd: web, stdio: "inherit" });
  execFileSync("npx", ["vite", "build", "--logLevel", "warn", "--outDir", fresh, "--emptyOutDir"], { cwd: web, stdio: "inherit" });
  const want = files(fresh);
  const have = files(dist);
  const stale = [];
  for (const f of new Set([...want, ...have])) {
    if (!want.includes(f)) stale.push(`extra: dist/${f}`);
    else if (!have.includes(f)) stale.push(`missing: dist/${f}`);
    else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(dist, f)))) stale.push(`differs: dist/${f}`);
  }
  if (stale.length) {
    console.error(`web/dist is stale (run \`npm run build\` in web/):\n  ${stale.join("\n  ")}`);
    process.exitCode = 1;
  } else {
    console.log(`web/dist is up to date (${want.length} files)`);
  }
} finally {
  rmSync(fresh, { recursive: true, force: true });
}
