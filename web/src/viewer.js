// The live viewer: draws a live pack with Spark (3D Gaussian splats on three.js) and re-poses it in the
// page for every rig control, preset, head pose and sequence frame: no server call after the pack.
//
// Page API (for the app, tests and embedding), on the element #live-viewer:
//   window.headsplat.viewer.load(urlOrFileData)   fetch and show a live pack (animatable), or a .splat
//                                                 download of a static method (model/core/export.py);
//                                                 resolves false if it failed or a newer load superseded it
//   .pending(text)                                a new avatar is on its way (an upload): the current one
//                                                 goes at once and a progress line says what is happening
//   .setControls({name: value})                   rig or ARKit names; merged into the current pose
//   .setView(yawDeg, pitchDeg)                    orbit camera, the server's framing (model.core.camera)
//   .play(sequence, {video})                      a control sequence (LAM's JSON format) at its own
//                                                 frame rate, or following a <video>'s clock
//   .pause() / .seek(frameIndex) / .stop()         hold a sequence frame, go to one, end playback
//   .follow(controls | null)                      ease towards these controls at display rate (mirror)
//   .setMaxFps(n)                                 cap the drawing rate (0: display rate); a software-
//                                                 WebGL page (tests) stays responsive with a low cap
//   .setBackground(cssColor)                      the clear colour (white by default, as the server's)
//   .stats() -> {splats, frames, poses, lastUpdateMs, medianUpdateMs, playing, sequenceFrame, settled,
//                loading, announced, timeline, error, ...}
//                settled: the last frame drawn shows the current pose and view with Spark's sort for them
//                (no clock involved: a slow page settles later, never on a stale frame);
//                loading: a new avatar is announced or loading and not drawn yet (the canvas is hidden);
//                timeline: ms from pending() (or load()) to each stage of the latest avatar's arrival:
//                pending, load, fetched, decoded, handed (to Spark), drawn (its first frame); epochMs:
//                when the first of them happened, in ms since 1970 (to line up with the server's log)
//   .snapshot() -> PNG data URL of the last drawn frame
//   .readSplats() -> {centers, scales, quats, rgba}: what Spark holds now, unpacked (tests, benchmarks)
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { PackedSplats, SparkRenderer, SplatFileType, SplatMesh, toHalf, unpackSplat, utils } from "@sparkjsdev/spark";
import { Mirror } from "./mirror.js";
import { MAGIC, PackError, readPack } from "./pack.js";
import { Poser, normalizeControls } from "./pose.js";

const FOV_Y_DEG = 20; // model.core.camera.framing_camera: fov 20 deg, the head's sphere fills 85%
const FILL = 0.85;
// Spark's packed encoding (its defaults: the renderer decodes with them): ln(scale) in 8 bits over
// [-12, 9], centres as float16, rotations as an 8+8-bit octahedral axis and an 8-bit angle.
const ENCODING = { rgbMin: 0, rgbMax: 1, lnScaleMin: -12, lnScaleMax: 9 };
const LN_STEP = 254 / (ENCODING.lnScaleMax - ENCODING.lnScaleMin);
const ELEMENT_ID = "live-viewer";
const FOLLOW_TAU_MS = 60; // mirror smoothing: time constant of the easing towards the latest controls
// Live packs share one PackedSplats whose size is a multiple of this (unused slots fully transparent): a new
// avatar of a similar size then keeps Spark's splat mapping, so its first frame is drawn at once with the
// previous sort order, instead of waiting for a first sort (a depth read-back of seconds in software WebGL).
const CAPACITY_STEP = 32768;

/** Call found(el) once an element with this id is in the page (now, or when Gradio renders it). */
function whenElement(id, found) {
  const now = document.getElementById(id);
  if (now) { found(now); return; }
  const watch = new MutationObserver(() => {
    const el = document.getElementById(id);
    if (el) { watch.disconnect(); found(el); }
  });
  watch.observe(document.documentElement, { childList: true, subtree: true });
}

class LiveViewer {
  constructor() {
    this.el = null;
    this.pack = null;
    this.poser = null;
    this.controls = {};
    this.ignored = [];
    this.frames = 0;
    this.poses = 0;
    this.updateMs = [];
    this.lastUpdateMs = null;
    this.dirtyPose = false;
    this.dirtyView = true;
    this.playing = null;
    this.sequenceFrame = -1;
    this.error = null;
    this.view = { yaw: 0, pitch: 0 };
    this.loadToken = 0; // bumped by every pending() and load(): an older load that finishes late is dropped
    this.announced = 0; // pending() calls
    this.marks = {};
    // a new avatar announced or loading: {handed: given to Spark, mapping: Spark's splat mapping with it}
    this.awaiting = null;
  }

  // ----------------------------------------------------------------------------------- set-up
  mount(el) {
    if (this.el === el) return true;
    if (!el) return false;
    this.el = el;
    el.classList.add("hs-live");
    el.innerHTML = "";
    this.message = document.createElement("div");
    this.message.className = "hs-live-message";
    this.message.hidden = true;
    el.appendChild(this.message);
    this.progressLine = document.createElement("div");
    this.progressLine.className = "hs-live-progress";
    this.progressLine.hidden = true;
    el.appendChild(this.progressLine);
    const probe = document.createElement("canvas").getContext("webgl2");
    if (!probe) {
      this.fail("Your browser has no WebGL2, so the live 3D view cannot run here. The server render shows the avatar instead.");
      return false;
    }
    this.renderer = new THREE.WebGLRenderer({ antialias: false, alpha: false, preserveDrawingBuffer: true });
    this.renderer.setClearColor(0xffffff, 1);
    this.renderer.setPixelRatio(1);
    el.appendChild(this.renderer.domElement);
    this.renderer.domElement.style.touchAction = "none";
    this.scene = new THREE.Scene();
    // Spark sorts the splats in a worker: when a new order is ready it asks for another frame
    this.spark = new SparkRenderer({ renderer: this.renderer, enableLod: false, onDirty: () => { this.needsFrame = true; } });
    this.scene.add(this.spark);
    this.camera = new THREE.PerspectiveCamera(FOV_Y_DEG, 1, 0.01, 100);
    this.orbit = new OrbitControls(this.camera, this.renderer.domElement);
    this.orbit.enableDamping = false;
    this.orbit.addEventListener("change", () => { this.dirtyView = true; });
    new ResizeObserver(() => this.resize()).observe(el);
    this.resize();
    this.renderer.setAnimationLoop(() => this.tick());
    return true;
  }

  resize() {
    if (!this.renderer || !this.el) return;
    const w = Math.max(1, this.el.clientWidth), h = Math.max(1, this.el.clientHeight || w);
    this.renderer.setSize(w, h, false);
    this.renderer.domElement.style.width = "100%";
    this.renderer.domElement.style.height = "100%";
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.dirtyView = true;
  }

  fail(text) {
    this.error = text;
    this.awaiting = null;
    if (this.message) {
      this.message.textContent = text;
      this.message.hidden = false;
    }
    this.progress(null);
    this.el && this.el.dispatchEvent(new CustomEvent("headsplat-error", { detail: text, bubbles: true }));
  }

  ensureMounted() {
    return this.mount(this.el || document.getElementById(ELEMENT_ID));
  }

  // ----------------------------------------------------------------------------------- loading
  /** A new avatar is on its way (the app calls this as an upload starts): the current avatar leaves the
   * view at once, so the previous person is never shown as if it were the new one. */
  pending(text = "Building the new avatar…") {
    if (!this.ensureMounted()) return false;
    this.loadToken += 1; // drops any load in flight
    this.inflight = null;
    this.announced += 1;
    this.clear();
    this.marks = {};
    this.mark("pending");
    this.awaiting = { handed: false, mapping: null };
    this.progress(text);
    return true;
  }

  /** The upload failed: show again the avatar the page had (the app's session kept it), or nothing. */
  restore() {
    // nothing announced, or an avatar on its way already (an upload fires twice: two failures, one restore)
    if (!this.awaiting || this.awaiting.handed || this.inflight) return false;
    this.awaiting = null;
    this.progress(null);
    return this.url ? this.load(this.url) : false;
  }

  mark(stage) {
    if (!Object.keys(this.marks).length) this.marksEpoch = Date.now();
    this.marks[stage] = performance.now();
  }

  /** One line over the view saying what is on its way (null hides it); the canvas hides while a new
   * avatar is awaited, since Spark keeps drawing its previous splats until the new ones are sorted. */
  progress(text) {
    if (this.progressLine) {
      this.progressLine.textContent = text || "";
      this.progressLine.hidden = !text;
    }
    if (this.renderer) this.renderer.domElement.style.visibility = this.error || this.awaiting ? "hidden" : "visible";
  }

  load(src) {
    const url = typeof src === "string" ? src : src && (src.url || src.path);
    if (!url) return Promise.resolve(false);
    // the same file again while it loads, or once it shows (a server call that found it built): no reload
    if (this.inflight && this.inflight.url === url) return this.inflight.promise;
    if (url === this.url && this.poser && !this.awaiting && !this.error) return Promise.resolve(true);
    const promise = this.fetchAndShow(url).finally(() => {
      if (this.inflight && this.inflight.promise === promise) this.inflight = null;
    });
    this.inflight = { url, promise };
    return promise;
  }

  async fetchAndShow(url) {
    if (!this.ensureMounted()) return false;
    const token = ++this.loadToken;
    if (!this.awaiting) this.marks = {};
    this.mark("load");
    this.awaiting = this.awaiting || { handed: false, mapping: null };
    this.progress("Downloading the avatar…");
    try {
      const res = await fetch(url);
      if (!res.ok) throw new PackError(`the avatar file could not be fetched (HTTP ${res.status})`);
      const bytes = await res.arrayBuffer();
      if (token !== this.loadToken) return false; // a newer avatar was asked for meanwhile
      this.mark("fetched");
      const head = String.fromCharCode(...new Uint8Array(bytes, 0, Math.min(4, bytes.byteLength)));
      if (head === MAGIC) {
        const pack = readPack(bytes);
        this.mark("decoded");
        this.show(pack);
      } else {
        await this.showStatic(bytes);
        if (token !== this.loadToken) return false;
      }
      this.url = url;
      this.mark("handed");
      this.progress("Drawing the avatar…");
    } catch (e) {
      if (token !== this.loadToken) return false;
      const why = e instanceof PackError ? e.message : `${e.name}: ${e.message}`;
      this.fail(`The live view could not read this avatar (${why}). The server render shows it instead.`);
      return false;
    }
    return true;
  }

  /** Ends the current avatar; the live packs' mesh stays in the scene (hidden) unless `dropMesh`. */
  clear(dropMesh = false) {
    this.stop();
    if (this.mesh && (dropMesh || !this.mesh.isLive)) {
      this.scene.remove(this.mesh);
      this.mesh.dispose && this.mesh.dispose();
      this.mesh = null;
      this.packed = null;
    }
    this.error = null;
    this.message.hidden = true;
    this.pack = null;
    this.poser = null;
    this.progress(null);
  }

  /** A static method's .splat (the download's 3DGS frame, y down): shown, not animatable. */
  async showStatic(bytes) {
    if (bytes.byteLength === 0 || bytes.byteLength % 32) throw new PackError("neither a live pack nor a .splat file");
    this.clear(true);
    const n = bytes.byteLength / 32;
    const pos = new Float32Array(bytes);
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 3; k++) {
        const v = pos[i * 8 + k] * (k ? -1 : 1); // back to the head world (+y up)
        lo[k] = Math.min(lo[k], v); hi[k] = Math.max(hi[k], v);
      }
    }
    this.mesh = new SplatMesh({ fileBytes: new Uint8Array(bytes), fileType: SplatFileType.SPLAT });
    this.mesh.quaternion.set(1, 0, 0, 0); // the customary flip of y-down captures
    await this.mesh.initialized;
    this.scene.add(this.mesh);
    this.awaiting = { handed: true, mapping: null };
    this.staticSplats = n;
    // model.core.camera.head_extent: box centre, radius 25% beyond the box's inscribed-sphere scale
    const c = lo.map((v, k) => 0.5 * (v + hi[k]));
    const r = 0.5 * Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / Math.sqrt(3) * 1.25;
    this.frame(c, r);
    this.el.dispatchEvent(new CustomEvent("headsplat-loaded", { detail: { splats: n, animatable: false }, bubbles: true }));
  }

  frame(center, radius) {
    this.center = new THREE.Vector3(...center);
    this.distance = radius / Math.sin(0.5 * FILL * THREE.MathUtils.degToRad(FOV_Y_DEG));
    this.orbit.target.copy(this.center);
    this.orbit.minDistance = 0.3 * this.distance;
    this.orbit.maxDistance = 4 * this.distance;
    this.setView(0, 0);
  }

  /** Move the viewer into another element (the app shows it on the Create, Animate and Mirror tabs).
   * Gradio renders a tab's children a few frames after the tab is selected, and its HTML component fills
   * its element in an effect that can run after the element is in the page, wiping a child put there
   * first (a CI run found the Animate tab empty). So the requested slot is a home the viewer keeps: it
   * moves in when the slot appears and back in whenever it is taken out (the latest request wins). */
  attach(slot) {
    const move = (target) => {
      if (!this.el || this.el.parentElement === target) return false;
      target.appendChild(this.el);
      this.resize();
      return true;
    };
    if (typeof slot !== "string") {
      this.home = null;
      return slot ? move(slot) : false;
    }
    this.home = slot;
    if (!this.homeWatch) {
      this.homeWatch = new MutationObserver(() => {
        const target = this.home && document.getElementById(this.home);
        if (target) move(target);
      });
      this.homeWatch.observe(document.documentElement, { childList: true, subtree: true });
    }
    const target = document.getElementById(slot);
    return target ? move(target) : false;
  }

  show(pack) {
    const T = pack.header.counts.gaussians;
    const reuse = !!(this.mesh && this.mesh.isLive && this.capacity >= T);
    this.clear(!reuse);
    if (!reuse) {
      this.capacity = Math.ceil(T / CAPACITY_STEP) * CAPACITY_STEP;
      this.packed = new PackedSplats({ maxSplats: this.capacity, splatEncoding: ENCODING });
    }
    this.staticSplats = 0;
    this.pack = pack;
    this.poser = new Poser(pack);
    const n = this.capacity;
    const arr = this.packed.ensureSplats(n);
    this.packed.numSplats = n;
    const { rgb, opacity } = this.poser;
    for (let i = 0; i < T; i++) {
      utils.setPackedSplatRgba(arr, i, rgb[i * 3] / 255, rgb[i * 3 + 1] / 255, rgb[i * 3 + 2] / 255,
        opacity[i] / 255, ENCODING);
    }
    arr.fill(0, T * 4, n * 4); // unused slots: opacity 0, drawn as nothing
    // per Gaussian: ln of its neutral scales; per used triangle: its encoded rotation (all of a
    // triangle's Gaussians share it), so each re-pose encodes 24k rotations, not 100k
    // per Gaussian, in Spark's 8-bit log-scale steps: the tangent scales before the triangle's growth, and
    // the normal scale's byte (it never grows)
    const sc = this.poser.s.scales, lo = ENCODING.lnScaleMin;
    this.lnStep = new Float64Array(T * 2);
    this.normalByte = new Uint32Array(T);
    for (let i = 0; i < T; i++) {
      this.lnStep[i * 2] = (Math.log(sc[i * 3]) - lo) * LN_STEP;
      this.lnStep[i * 2 + 1] = (Math.log(sc[i * 3 + 1]) - lo) * LN_STEP;
      this.normalByte[i] = Math.min(255, Math.max(1, Math.round((Math.log(sc[i * 3 + 2]) - lo) * LN_STEP) + 1));
    }
    // centres to float16 in one native call where the browser has Float16Array (Spark's toHalf otherwise)
    this.half = typeof Float16Array === "function" ? new Float16Array(T * 3) : null;
    this.halfBits = this.half ? new Uint16Array(this.half.buffer) : new Uint16Array(T * 3);
    this.faceQlo = new Uint32Array(this.poser.U);
    this.faceQhi = new Uint32Array(this.poser.U);
    this.faceLnGrow = new Float64Array(this.poser.U);
    this.scratch = new Uint32Array(4);
    this.controls = {};
    this.applyPose();
    if (!reuse) {
      this.mesh = new SplatMesh({ packedSplats: this.packed });
      this.mesh.isLive = true;
      this.scene.add(this.mesh);
    }
    this.awaiting = { handed: true, mapping: null };
    this.frame(pack.header.head_center, pack.header.head_radius);
    this.el.dispatchEvent(new CustomEvent("headsplat-loaded", { detail: { splats: T, animatable: true }, bubbles: true }));
  }

  // ----------------------------------------------------------------------------------- posing
  setControls(values) {
    Object.assign(this.controls, values || {});
    this.dirtyPose = true;
    // pose now, not at the next animation frame: a caller measuring stats() sees this update
    if (this.poser) this.applyPose();
  }

  resetControls(values) {
    this.controls = {};
    this.setControls(values);
  }

  applyPose() {
    if (!this.poser) return;
    const t0 = performance.now();
    const { ignored } = this.poser.place(this.controls);
    this.writePacked();
    this.packed.needsUpdate = true;
    if (this.mesh) this.mesh.updateVersion();
    this.lastUpdateMs = performance.now() - t0;
    this.updateMs.push(this.lastUpdateMs);
    if (this.updateMs.length > 200) this.updateMs.shift();
    this.ignored = ignored;
    this.poses += 1;
    this.dirtyPose = false;
    this.dirtyView = true;
  }

  /** The re-posed Gaussians into Spark's packed words (its setPackedSplat* layout, written in one pass:
   * calling those helpers per Gaussian cost ~50 ms for 100k, this ~5 ms). Colours stay as loaded. */
  writePacked() {
    const { centers, faceQuat: Q, faceGrow, U, T, s } = this.poser;
    const arr = this.packed.packedArray, lnS = this.lnStep, nb = this.normalByte, qlo = this.faceQlo, qhi = this.faceQhi;
    const scratch = this.scratch;
    const lnG = this.faceLnGrow;
    for (let u = 0; u < U; u++) {
      // Spark takes (x, y, z, w); the poser's are (w, x, y, z)
      utils.setPackedSplatQuat(scratch, 0, Q[u * 4 + 1], Q[u * 4 + 2], Q[u * 4 + 3], Q[u * 4]);
      qlo[u] = scratch[2] >>> 16;
      qhi[u] = scratch[3] >>> 24;
      lnG[u] = Math.log(faceGrow[u]) * LN_STEP;
    }
    const h = this.halfBits;
    if (this.half) this.half.set(centers);
    else for (let k = 0; k < T * 3; k++) h[k] = toHalf(centers[k]);
    const slot = s.slot;
    for (let i = 0; i < T; i++) {
      const u = slot[i], o = i * 3, w = i * 4;
      const g = lnG[u];
      const sx = Math.min(255, Math.max(1, Math.round(lnS[i * 2] + g) + 1));
      const sy = Math.min(255, Math.max(1, Math.round(lnS[i * 2 + 1] + g) + 1));
      arr[w + 1] = h[o] | (h[o + 1] << 16);
      arr[w + 2] = h[o + 2] | (qlo[u] << 16);
      arr[w + 3] = sx | (sy << 8) | (nb[i] << 16) | (qhi[u] << 24);
    }
  }

  setView(yawDeg, pitchDeg, distance) {
    if (!this.camera || !this.center) return;
    const y = THREE.MathUtils.degToRad(yawDeg), p = THREE.MathUtils.degToRad(pitchDeg);
    const d = distance || this.distance;
    // model.core.camera.orbit_position: yaw about +y towards +x, pitch towards +y
    this.camera.position.set(this.center.x + d * Math.sin(y) * Math.cos(p), this.center.y + d * Math.sin(p),
      this.center.z + d * Math.cos(y) * Math.cos(p));
    this.camera.up.set(0, 1, 0);
    this.camera.lookAt(this.center);
    this.orbit.update();
    this.view = { yaw: yawDeg, pitch: pitchDeg };
    this.dirtyView = true;
  }

  // ----------------------------------------------------------------------------------- sequences
  /** sequence: {names, frames: [{weights, time}], head_pose?} (LAM's format; the app writes it too). */
  play(sequence, options = {}) {
    if (!this.poser) throw new Error("load an avatar before playing a sequence");
    const { names, frames } = sequence || {};
    if (!Array.isArray(names) || !Array.isArray(frames) || frames.length === 0) {
      throw new Error("a sequence needs a 'names' list and a non-empty 'frames' list");
    }
    const pose = sequence.head_pose || [];
    const steps = frames.map((f, i) => {
      const c = {};
      names.forEach((n, k) => { c[n] = f.weights[k]; });
      if (pose[i]) { c.headPitch = pose[i][0]; c.headYaw = pose[i][1]; c.headRoll = pose[i][2]; }
      return { time: Number.isFinite(f.time) ? f.time : i / 30, controls: c };
    });
    const base = { ...this.controls };
    this.playing = { steps, base, start: performance.now(), video: options.video || null,
      loop: options.loop !== false, ignored: normalizeControls(this.pack.header, steps[0].controls).ignored };
    this.sequenceFrame = -1;
    return steps.length;
  }

  pause() {
    if (this.playing) this.playing.paused = true;
  }

  seek(frame) {
    const p = this.playing;
    if (!p) throw new Error("no sequence is playing");
    p.paused = true;
    this.sequenceFrame = Math.max(0, Math.min(p.steps.length - 1, Math.round(frame)));
    this.controls = { ...p.base, ...p.steps[this.sequenceFrame].controls };
    this.applyPose();
    return this.sequenceFrame;
  }

  /** Ease the pose towards `controls` (the mirror's latest frame) at display rate; null ends it. */
  follow(controls) {
    this.following = controls ? { ...controls } : null;
    this.lastFollowT = performance.now();
  }

  easeTowards() {
    const now = performance.now();
    const a = 1 - Math.exp(-(now - this.lastFollowT) / FOLLOW_TAU_MS);
    this.lastFollowT = now;
    let moved = 0;
    for (const [k, target] of Object.entries(this.following)) {
      const v = this.controls[k] || 0;
      const next = v + a * (target - v);
      moved = Math.max(moved, Math.abs(next - v));
      this.controls[k] = next;
    }
    if (moved > 1e-4) this.dirtyPose = true;
  }

  stop() {
    if (this.playing) {
      this.controls = { ...this.playing.base };
      this.dirtyPose = !!this.poser;
    }
    this.playing = null;
  }

  advance() {
    const p = this.playing;
    const steps = p.steps;
    const duration = steps[steps.length - 1].time + (steps.length > 1 ? steps[1].time - steps[0].time : 1 / 30);
    let t = p.video ? p.video.currentTime : (performance.now() - p.start) / 1000;
    if (p.loop && duration > 0) t %= duration;
    let lo = 0, hi = steps.length - 1; // the last step at or before t
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (steps[mid].time <= t) lo = mid; else hi = mid - 1;
    }
    if (lo !== this.sequenceFrame) {
      this.sequenceFrame = lo;
      this.controls = { ...p.base, ...steps[lo].controls };
      this.applyPose();
    }
  }

  // ----------------------------------------------------------------------------------- drawing
  tick() {
    if (!this.mesh) return;
    if (this.playing && !this.playing.paused) this.advance();
    else if (this.following && this.poser) this.easeTowards();
    if (this.dirtyPose) this.applyPose();
    // render on demand (software WebGL is slow): after a change, and when Spark has new splats or a new
    // sort order to show (its onDirty). Not while it sorts: frames drawn then show nothing new, and in
    // software WebGL they slow the sort's own depth read-back several times over.
    const running = this.playing && !this.playing.paused;
    if (!running && !this.needsFrame && !this.dirtyView) return;
    if (this.maxFps && performance.now() - (this.lastFrameT || 0) < 1000 / this.maxFps) return;
    this.lastFrameT = performance.now();
    this.needsFrame = false;
    this.orbit.update();
    const t0 = performance.now();
    this.renderer.render(this.scene, this.camera);
    this.lastRenderMs = performance.now() - t0;
    this.frames += 1;
    this.dirtyView = false;
    if (this.awaiting && this.awaiting.handed) this.checkFirstFrame();
  }

  /** Spark shows a new splat mapping only once its first sort is done (until then it draws its previous
   * splats): the first render after the hand-over generates the new splats, and the first frame whose
   * display holds them is the new avatar's first frame. */
  checkFirstFrame() {
    const sp = this.spark;
    if (this.awaiting.mapping === null) this.awaiting.mapping = sp.current.mappingVersion;
    // mapping versions only grow; a display with none of the new splats yet is not the first frame. With
    // the mapping kept (a reused mesh) the display is the new splats already, drawn in the previous order.
    if (sp.display.mappingVersion < this.awaiting.mapping || sp.display !== sp.current || !sp.activeSplats) return;
    this.awaiting = null;
    this.mark("drawn");
    this.progress(null);
  }

  sortPending() {
    return !!(this.spark && (this.spark.sorting || this.spark.sortDirty));
  }

  setMaxFps(fps) {
    this.maxFps = Math.max(0, Number(fps) || 0);
  }

  setBackground(color) {
    if (!this.renderer) return;
    this.renderer.setClearColor(new THREE.Color(color), 1);
    this.dirtyView = true;
  }

  snapshot() {
    return this.renderer ? this.renderer.domElement.toDataURL("image/png") : null;
  }

  stats() {
    const sorted = [...this.updateMs].sort((a, b) => a - b);
    return {
      splats: this.poser ? this.poser.T : this.staticSplats || 0, animatable: !!this.poser, frames: this.frames, poses: this.poses,
      lastUpdateMs: this.lastUpdateMs, lastRenderMs: this.lastRenderMs, medianUpdateMs: sorted.length ? sorted[sorted.length >> 1] : null,
      settled: !this.dirtyView && !this.dirtyPose && !this.needsFrame && !this.sortPending() && !this.awaiting
        && this.frames > 0,
      loading: !!this.awaiting, announced: this.announced, timeline: this.timeline(),
      source: this.url || null, playing: !!this.playing && !this.playing.paused, sequenceFrame: this.sequenceFrame, controls: { ...this.controls },
      ignored: this.playing ? this.playing.ignored : this.ignored, error: this.error, view: { ...this.view },
    };
  }

  timeline() {
    const t0 = this.marks.pending ?? this.marks.load;
    const out = Object.fromEntries(Object.entries(this.marks).map(([k, t]) => [k, Math.round(t - t0)]));
    if (t0 !== undefined) out.epochMs = this.marksEpoch; // to line up with a server's clock
    return out;
  }

  readSplats() {
    const T = this.poser ? this.poser.T : 0;
    const out = { centers: new Float32Array(T * 3), scales: new Float32Array(T * 3), quats: new Float32Array(T * 4),
      rgba: new Float32Array(T * 4) };
    for (let i = 0; i < T; i++) {
      const s = unpackSplat(this.packed.packedArray, i, ENCODING);
      out.centers.set([s.center.x, s.center.y, s.center.z], i * 3);
      out.scales.set([s.scales.x, s.scales.y, s.scales.z], i * 3);
      out.quats.set([s.quaternion.w, s.quaternion.x, s.quaternion.y, s.quaternion.z], i * 4);
      out.rgba.set([s.color.r, s.color.g, s.color.b, s.opacity], i * 4);
    }
    return out;
  }
}

const viewer = new LiveViewer();
const mirror = new Mirror(viewer);
window.headsplat = Object.assign(window.headsplat || {}, { viewer, mirror, attach: (slot) => viewer.attach(slot) });
// Gradio renders components after this module runs: mount when #live-viewer appears.
whenElement(ELEMENT_ID, () => viewer.ensureMounted());
