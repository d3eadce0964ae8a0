// Bundles src/viewer.js (and the pinned three + Spark it imports) into dist/viewer.js, one ES module
// that the app serves from its own origin: nothing is fetched from a CDN at run time.
import { build } from "esbuild";

await build({
  entryPoints: ["src/viewer.js"],
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: false,
  target: ["chrome110", "firefox115", "safari16"],
  outfile: "dist/viewer.js",
  logLevel: "warning",
  legalComments: "eof",
});
console.log("built dist/viewer.js");
