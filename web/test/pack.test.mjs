// Node's own test runner (node --test web/test/): the pack reader's checks and the re-posing rules on
// tiny packs written here, against hand computations. The Python tests compare the same code with the
// server's Gaussians on a real avatar (tests/test_live.py).
import assert from "node:assert/strict";
import test from "node:test";
import { PackError, readPack } from "../src/pack.js";
import { Poser, eyeTurn, gazeFromArkit, normalizeControls, rotationFromEuler } from "../src/pose.js";

/** A live pack in the layout of model/ours/live.py: header fields + {name: typed array, shape}. */
function writePack(header, sections, { version = 2, magic = "HSLP" } = {}) {
  const table = {};
  const blobs = [];
  let offset = 0;
  const dtype = (a) => ({ Uint8Array: "u8", Uint16Array: "u16", Uint32Array: "u32", Int16Array: "i16", Float32Array: "f32" })[a.constructor.name];
  for (const [name, [arr, shape]] of Object.entries(sections)) {
    table[name] = { offset, dtype: dtype(arr), shape };
    const bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    const padded = new Uint8Array(Math.ceil(bytes.length / 8) * 8);
    padded.set(bytes);
    blobs.push(padded);
    offset += padded.length;
  }
  const head = new TextEncoder().encode(JSON.stringify({ ...header, sections: table }));
  const start = Math.ceil((12 + head.length) / 8) * 8;
  const out = new Uint8Array(start + offset);
  out.set(new TextEncoder().encode(magic), 0);
  new DataView(out.buffer).setUint32(4, version, true);
  new DataView(out.buffer).setUint32(8, head.length, true);
  out.set(head, 12);
  let at = start;
  for (const b of blobs) { out.set(b, at); at += b.length; }
  return out.buffer;
}

// One triangle in the x-y plane (normal +z), one Gaussian at its barycentre; one expression "jawOpen"
// that moves vertex 2 by (0, +0.01, 0) at 1; vertex 0 is not turned by the head (neck weight 0).
// eye: {right, left} vertex ids of the eyeballs, their centres and rest directions (yaw, pitch).
function tinyPack({ hair = [0, 0, 0], slot = 0, eye = {} } = {}) {
  const { right = [], left = [], centres = [[0, 0, 0], [0, 0, 0]], rest = [[0, 0], [0, 0]], drop } = eye;
  const header = {
    format: "headsplat-live", version: 2,
    counts: { vertices: 3, faces: 1, used_faces: 1, gaussians: 1, expressions: 1, delta_entries: 1 },
    head_center: [0, 0, 0], head_radius: 0.1, neck_pivot: [0, 0, 0], eye_centres: centres, eye_rest: rest,
    eye_look_deg: { In: 30, Out: 30, Up: 25, Down: 30 },
    expressions: ["jawOpen"],
    controls: [{ name: "jawOpen", min: 0, max: 1, neutral: 0 }, { name: "headYaw", min: -1.2, max: 1.2, neutral: 0 },
      ...["In", "Out", "Up", "Down"].flatMap((d) => ["Left", "Right"].map((side) => (
        { name: `eyeLook${d}${side}`, min: 0, max: 1, neutral: 0 })))],
    arkit_ignored: ["tongueOut"],
  };
  if (drop) delete header[drop];
  const sections = {
    vertices: [new Float32Array([0, 0, 0, 0.03, 0, 0, 0, 0.03, 0]), [3, 3]],
    faces: [new Uint16Array([0, 1, 2]), [1, 3]],
    delta_start: [new Uint32Array([0, 1]), [2]],
    delta_index: [new Uint16Array([2]), [1]],
    delta_value: [new Int16Array([0, 32767, 0]), [1, 3]],
    delta_scale: [new Float32Array([0.01 / 32767]), [1]],
    neck_weight: [new Float32Array([0, 1, 1]), [3]],
    eyeball_r: [new Uint32Array(right), [right.length]],
    eyeball_l: [new Uint32Array(left), [left.length]],
    hair: [new Float32Array(hair), [3]],
    used_faces: [new Uint32Array([0]), [1]],
    uv_coef: [new Float32Array([1, 0]), [1, 2]],
    rest_area: [new Float32Array([0.5 * 0.03 * 0.03]), [1]],
    slot: [new Uint16Array([slot]), [1]],
    bary: [new Uint16Array([21845, 21845]), [1, 2]],
    scales: [new Float32Array([0.002, 0.001, 0.0005]), [1, 3]],
    rgb: [new Uint8Array([200, 100, 50]), [1, 3]],
    opacity: [new Uint8Array([250]), [1]],
  };
  return writePack(header, sections);
}

const close = (a, b, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b} (tol ${tol})`);

test("a valid pack reads back with its sections", () => {
  const p = readPack(tinyPack());
  assert.equal(p.header.counts.gaussians, 1);
  assert.deepEqual(Array.from(p.s.faces), [0, 1, 2]);
  assert.equal(p.s.rgb[0], 200);
});

test("malformed packs are refused with a reason", () => {
  const good = tinyPack();
  assert.throws(() => readPack(good.slice(0, good.byteLength - 40)), (e) => e instanceof PackError && /truncated/.test(e.message));
  assert.throws(() => readPack(good.slice(0, 6)), PackError);
  assert.throws(() => readPack(new TextEncoder().encode("PK\u0003\u0004 not a pack").buffer), /bad magic/);
  const bytes = new Uint8Array(good.slice(0));
  new DataView(bytes.buffer).setUint32(4, 3, true); // a newer version
  assert.throws(() => readPack(bytes.buffer), /version 3/);
  new DataView(bytes.buffer).setUint32(4, 1, true); // the version before the ARKit rig
  assert.throws(() => readPack(bytes.buffer), /version 1/);
  assert.throws(() => readPack(tinyPack({ slot: 5 })), /indexes past/);
  assert.throws(() => readPack(tinyPack({ eye: { right: [7] } })), /indexes past/);
  assert.throws(() => readPack(tinyPack({ eye: { drop: "eye_rest" } })), /eyes' header/);
  assert.throws(() => readPack(tinyPack({ eye: { rest: [[0, 0]] } })), /eyes' header/);
});

test("neutral pose: the Gaussian sits at its barycentric point with the triangle's frame", () => {
  const poser = new Poser(readPack(tinyPack()));
  poser.pose({});
  const b = 21845 / 65535;
  close(poser.centers[0], b * 0.03, 1e-7);
  close(poser.centers[1], b * 0.03, 1e-7);
  close(poser.centers[2], 0, 1e-9);
  // tangent = e1 = +x, normal = +z: the frame is the identity rotation
  close(poser.quats[0], 1, 1e-6);
  close(poser.scales[0], 0.002, 1e-9);
});

test("an expression moves its vertices by weight x delta; the triangle's stretch grows the splat", () => {
  const poser = new Poser(readPack(tinyPack()));
  poser.pose({ jawOpen: 0.5 });
  const b = 21845 / 65535;
  close(poser.centers[1], b * 0.03 + b * 0.005, 1e-7);
  // the triangle's area grew by 0.035 / 0.03: tangent scales by its square root, the normal one not
  close(poser.scales[0], 0.002 * Math.sqrt(0.035 / 0.03), 1e-8);
  close(poser.scales[2], 0.0005, 1e-9);
  poser.pose({ jawOpen: -1 }); // clipped to the control's range [0, 1]: neutral
  close(poser.centers[1], b * 0.03, 1e-7);
});

test("head rotation turns vertices about the pivot, blended by the neck weight", () => {
  const poser = new Poser(readPack(tinyPack()));
  poser.pose({ headYaw: 0.3 });
  const R = rotationFromEuler(0.3, 0, 0);
  // vertex 0 stays (weight 0); vertices 1 and 2 turn fully
  const v1 = [R[0] * 0.03, R[3] * 0.03, R[6] * 0.03];
  const v2 = [R[1] * 0.03, R[4] * 0.03, R[7] * 0.03];
  const b = 21845 / 65535;
  for (let k = 0; k < 3; k++) close(poser.centers[k], b * v1[k] + b * v2[k], 1e-7);
});

test("rotationFromEuler is R_y(yaw) R_x(pitch) R_z(roll)", () => {
  const R = rotationFromEuler(0.2, -0.4, 0.7);
  const cy = Math.cos(0.2), sy = Math.sin(0.2), cp = Math.cos(-0.4), sp = Math.sin(-0.4), cr = Math.cos(0.7), sr = Math.sin(0.7);
  const mul = (A, B) => A.map((_, i) => [0, 1, 2].reduce((s, k) => s + A[Math.floor(i / 3) * 3 + k] * B[k * 3 + (i % 3)], 0));
  const expect = mul(mul([cy, 0, sy, 0, 1, 0, -sy, 0, cy], [1, 0, 0, 0, cp, -sp, 0, sp, cp]), [cr, -sr, 0, sr, cr, 0, 0, 0, 1]);
  R.forEach((v, i) => close(v, expect[i], 1e-12));
});

test("hair offsets the surface along the vertex normal", () => {
  const poser = new Poser(readPack(tinyPack({ hair: [0.01, 0.01, 0.01] })));
  poser.pose({});
  close(poser.centers[2], 0.01, 1e-7);
});

test("controls are ARKit names, clipped to their ranges; unknown names and tongueOut are reported, not thrown", () => {
  const { header } = readPack(tinyPack());
  const { values, ignored } = normalizeControls(header, { eyeLookOutLeft: 1.5, jawOpen: 0.2, tongueOut: 1,
    notAControl: 3, eyeYaw: 0.3, headYaw: Number.NaN });
  assert.deepEqual(values, { eyeLookOutLeft: 1, jawOpen: 0.2 });
  assert.deepEqual(ignored.sort(), ["eyeYaw", "headYaw", "notAControl", "tongueOut"]);
});

test("eyeLook* weights give each eye's gaze as model.head.rig.gaze_from_arkit", () => {
  const deg = { In: 30, Out: 30, Up: 25, Down: 30 }, r = Math.PI / 180;
  // looking to the subject's left (+x): the left eye looks out, the right eye in
  let g = gazeFromArkit({ eyeLookOutLeft: 1, eyeLookInRight: 0.5 }, deg);
  close(g[1][0], 30 * r, 1e-12); close(g[0][0], 15 * r, 1e-12); close(g[0][1], 0); close(g[1][1], 0);
  // looking to the subject's right (-x)
  g = gazeFromArkit({ eyeLookOutRight: 1, eyeLookInLeft: 1 }, deg);
  close(g[0][0], -30 * r, 1e-12); close(g[1][0], -30 * r, 1e-12);
  // down is > 0 pitch, up < 0; each eye reads its own side's weights; opposing weights cancel
  g = gazeFromArkit({ eyeLookDownRight: 0.5, eyeLookUpLeft: 1, eyeLookOutLeft: 0.4, eyeLookInLeft: 0.4 }, deg);
  close(g[0][1], 15 * r, 1e-12); close(g[1][1], -25 * r, 1e-12); close(g[1][0], 0, 1e-12); close(g[0][0], 0);
});

test("an eye turn by g from the rest direction a is R(a + g) R(a)^T", () => {
  const a = [0.2, -0.1], g = [0.3, 0.25];
  const M = eyeTurn(a, g);
  const A = rotationFromEuler(a[0] + g[0], a[1] + g[1], 0), B = rotationFromEuler(a[0], a[1], 0);
  // M B = A (B is a rotation)
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) close(M[i * 3] * B[j] + M[i * 3 + 1] * B[3 + j] + M[i * 3 + 2] * B[6 + j], A[i * 3 + j], 1e-12);
  }
  eyeTurn([0.4, 0.1], [0, 0]).forEach((v, i) => close(v, [1, 0, 0, 0, 1, 0, 0, 0, 1][i], 1e-12));
});

test("eyeLook* turn each eyeball about its centre from its rest direction; the other eye stays", () => {
  // vertex 2 (0, 0.03, 0) is 1 cm in front (+z) of the eye's centre
  const centre = [0, 0.03, -0.01], b = 21845 / 65535;
  const left = new Poser(readPack(tinyPack({ eye: { left: [2], centres: [[0, 0, 0], centre] } })));
  left.pose({ eyeLookOutLeft: 1 }); // the left eye looks out: towards +x
  close(left.centers[0], b * 0.03 + b * 0.01 * Math.sin(Math.PI / 6), 1e-7);
  close(left.centers[2], b * (-0.01 + 0.01 * Math.cos(Math.PI / 6)), 1e-7);
  left.pose({ eyeLookOutRight: 1, eyeLookUpRight: 1 }); // the right eye's controls: the left eyeball stays
  close(left.centers[0], b * 0.03, 1e-9); close(left.centers[2], 0, 1e-9);
  const right = new Poser(readPack(tinyPack({ eye: { right: [2], centres: [centre, [0, 0, 0]] } })));
  right.pose({ eyeLookOutRight: 1 }); // the right eye looks out: towards -x
  close(right.centers[0], b * 0.03 - b * 0.01 * Math.sin(Math.PI / 6), 1e-7);
  right.pose({ eyeLookDownRight: 1 }); // down
  close(right.centers[1], b * (0.03 - 0.01 * Math.sin(Math.PI / 6)), 1e-7);
  // a rest direction that is not straight ahead: the turn is R(rest + g) R(rest)^T about the centre
  const rest = [0.3, 0.1];
  const turned = new Poser(readPack(tinyPack({ eye: { left: [2], centres: [[0, 0, 0], centre], rest: [[0, 0], rest] } })));
  turned.pose({ eyeLookInLeft: 0.5, eyeLookDownLeft: 0.2 });
  const g = [-15 * Math.PI / 180, 6 * Math.PI / 180];
  const M = eyeTurn(rest, g), p = [0, 0, 0.01];
  const v2 = [0, 1, 2].map((i) => centre[i] + M[i * 3] * p[0] + M[i * 3 + 1] * p[1] + M[i * 3 + 2] * p[2]);
  [b * 0.03 + b * v2[0], b * v2[1], b * v2[2]].forEach((v, i) => close(turned.centers[i], v, 1e-7));
});
