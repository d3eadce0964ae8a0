// Test-only bundle: web/test/lam/main.js (and LAM's renderer + the three.js it pins) -> web/dist/lam-check.js,
// plus the page next to it (web/dist/lam-check.html). Run from web/: `node test/lam/build.mjs`.
// Not part of the app's build (web/build.mjs); tests/test_lam_renderer.py runs it.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["test/lam/main.js"],
  bundle: true,
  format: "esm",
  minify: false,
  sourcemap: false,
  target: ["chrome110"],
  outfile: "dist/lam-check.js",
  logLevel: "warning",
  legalComments: "eof",
});
copyFileSync("test/lam/index.html", "dist/lam-check.html");
console.log("built dist/lam-check.js");
