// Re-pose a live pack under a list of controls with the viewer's own code, for the Python tests and
// benchmarks:  node tools/pose.mjs PACK CONTROLS.json OUT.bin
// CONTROLS.json: [{name: value, ...}, ...]; OUT.bin: for each pose, centers f32 [T,3], quats f32 [T,4]
// (w, x, y, z), scales f32 [T,3]. Prints one JSON line: {gaussians, poses, pose_ms_median}.
import { readFileSync, writeFileSync } from "node:fs";
import { readPack } from "../src/pack.js";
import { Poser } from "../src/pose.js";

const [packPath, controlsPath, outPath] = process.argv.slice(2);
const buf = readFileSync(packPath);
const poser = new Poser(readPack(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)));
const list = JSON.parse(readFileSync(controlsPath, "utf8"));
const parts = [];
const ms = [];
for (const controls of list) {
  const t0 = performance.now();
  poser.pose(controls);
  ms.push(performance.now() - t0);
  for (const a of [poser.centers, poser.quats, poser.scales]) parts.push(Buffer.from(a.slice().buffer));
}
writeFileSync(outPath, Buffer.concat(parts));
ms.sort((a, b) => a - b);
console.log(JSON.stringify({ gaussians: poser.T, poses: list.length, pose_ms_median: ms[Math.floor(ms.length / 2)] }));
