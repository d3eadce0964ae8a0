// Reader of the live pack, the binary file the app writes for each avatar. Its layout is documented
// once, in model/ours/live.py (the Python writer and reader); this mirrors that reader's checks.

export const MAGIC = "HSLP";
export const FORMAT_VERSION = 2;

const TYPES = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, i16: Int16Array, f32: Float32Array };
const SECTIONS = ["vertices", "faces", "delta_start", "delta_index", "delta_value", "delta_scale",
  "neck_weight", "eyeball_r", "eyeball_l", "hair", "used_faces", "uv_coef", "rest_area", "slot", "bary",
  "scales", "rgb", "opacity"];

export class PackError extends Error {
  constructor(message) {
    super(message);
    this.name = "PackError";
  }
}

/** ArrayBuffer -> {header, s: {name: typed array}}; throws PackError on anything malformed. */
export function readPack(buffer) {
  if (!(buffer instanceof ArrayBuffer)) throw new PackError("a live pack is an ArrayBuffer");
  if (buffer.byteLength < 12) throw new PackError("truncated live pack (no header)");
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== MAGIC) throw new PackError("not a HeadSplat live pack (bad magic)");
  const version = view.getUint32(4, true);
  if (version !== FORMAT_VERSION) {
    throw new PackError(`live pack version ${version}; this viewer reads version ${FORMAT_VERSION}`);
  }
  const n = view.getUint32(8, true);
  if (12 + n > buffer.byteLength) throw new PackError("truncated live pack (header)");
  let header;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(buffer, 12, n)));
  } catch (e) {
    throw new PackError(`live pack header is not JSON: ${e.message}`);
  }
  const start = 12 + n + ((8 - ((12 + n) % 8)) % 8);
  const s = {};
  for (const name of SECTIONS) {
    const sec = header.sections && header.sections[name];
    const T = sec && TYPES[sec.dtype];
    if (!T) throw new PackError(`live pack: section '${name}' missing or of unknown type`);
    const count = sec.shape.reduce((a, b) => a * b, 1);
    const lo = start + sec.offset;
    if (lo % T.BYTES_PER_ELEMENT || lo + count * T.BYTES_PER_ELEMENT > buffer.byteLength) {
      throw new PackError(`truncated live pack (section '${name}')`);
    }
    s[name] = new T(buffer, lo, count);
  }
  check(header, s);
  return { header, s };
}

function check(header, s) {
  const c = header.counts || {};
  const want = {
    vertices: c.vertices * 3, faces: c.faces * 3, neck_weight: c.vertices, hair: c.vertices,
    used_faces: c.used_faces, uv_coef: c.used_faces * 2, rest_area: c.used_faces, slot: c.gaussians,
    bary: c.gaussians * 2, scales: c.gaussians * 3, rgb: c.gaussians * 3, opacity: c.gaussians,
    delta_start: c.expressions + 1, delta_scale: c.expressions, delta_index: c.delta_entries,
    delta_value: c.delta_entries * 3,
  };
  for (const [name, n] of Object.entries(want)) {
    if (s[name].length !== n) throw new PackError(`live pack: section '${name}' has ${s[name].length} values, counts say ${n}`);
  }
  const limits = [["faces", c.vertices], ["delta_index", c.vertices], ["eyeball_r", c.vertices],
    ["eyeball_l", c.vertices], ["used_faces", c.faces], ["slot", c.used_faces]];
  for (const [name, limit] of limits) {
    const a = s[name];
    for (let i = 0; i < a.length; i++) {
      if (a[i] >= limit) throw new PackError(`live pack: section '${name}' indexes past its target (${limit})`);
    }
  }
  const st = s.delta_start;
  for (let i = 1; i < st.length; i++) {
    if (st[i] < st[i - 1]) throw new PackError("live pack: delta_start is not a running count");
  }
  if (st[st.length - 1] !== c.delta_entries) throw new PackError("live pack: delta_start does not end at delta_entries");
  if (!Array.isArray(header.expressions) || header.expressions.length !== c.expressions) {
    throw new PackError("live pack: the expression names do not match the count");
  }
  const pairs = (a, n) => Array.isArray(a) && a.length === 2 && a.every((r) => Array.isArray(r) && r.length === n
    && r.every(Number.isFinite));
  const deg = header.eye_look_deg;
  if (!pairs(header.eye_centres, 3) || !pairs(header.eye_rest, 2) || !deg
      || !["In", "Out", "Up", "Down"].every((k) => Number.isFinite(deg[k]))) {
    throw new PackError("live pack: the eyes' header (eye_centres [2,3], eye_rest [2,2], eye_look_deg {In, Out, Up, Down}) is missing or malformed");
  }
}
