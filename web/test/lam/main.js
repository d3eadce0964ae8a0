// Test-only harness: drives LAM's own web renderer (npm gaussian-splat-renderer-for-lam, pinned in
// web/package.json's devDependencies) on one avatar zip and plays ARKit-52 weights per frame.
// Not part of the app. Bundled by web/test/lam/build.mjs into web/dist/lam-check.js; used by
// tests/test_lam_renderer.py.
//
// Page URL: index.html?zip=URL_OF/NAME.zip[&seq=URL_OF_SEQUENCE.json][&fps=30][&fov=DEGREES][&bg=0xRRGGBB]
//   zip: a LAM avatar package; LAM's renderer takes the avatar's name from the URL (NAME.zip) and the
//        folder inside the zip as the one holding offset.ply, skin.glb, animation.glb, vertex_order.json.
//   seq: {"names": [52 ARKit names], "frames": [{"weights": [52 floats]}, ...]} (LAM's
//        test_expression format); absent -> all weights 0.
//   fov: vertical field of view of LAM's camera (its own: 50 degrees from (0, 1.8, 1), pitched 10 degrees
//        down); a smaller one fills a small canvas with the head. bg: clear colour (LAM's default white).
//
// window.lamCheck (the test's API):
//   ready        true once the splats are loaded and the renderer's loop has drawn
//   error        a message when loading failed (null otherwise)
//   frames       how many frames the renderer's loop has asked weights for (it does once per frame)
//   index        the sequence frame index given at the last request
//   headBone()   the skinned mesh's "head" bone rotation (x, y, z, w): LAM's body clips move it
//   names        morph target names of the avatar's skinned mesh (as the renderer sees them)
//   splats       Gaussian count of the avatar mesh
//   play()/pause()        advance through the sequence (at fps, wall clock) or hold the current frame
//   seek(i)               hold sequence frame i
//   setWeights(obj|null)  hold these weights ({name: value}, others 0); null -> back to the sequence
//   settle(n)             a promise resolved after n more frames drawn with the current weights
//   snapshot()            a promise of the next drawn frame as a PNG data URL (read in that frame, before
//                         the browser presents it: LAM's WebGL canvas keeps no drawing buffer)
//   body(on)              run (true, LAM's default) or freeze (false) the body clips of animation.glb that
//                         LAM's renderer plays on the skeleton (its AnimationMixer's time scale)
import { GaussianSplatRenderer, SceneRevealMode } from "gaussian-splat-renderer-for-lam";

const params = new URLSearchParams(location.search);
const zipUrl = params.get("zip");
const seqUrl = params.get("seq");
const fps = Number(params.get("fps") || 30);

const state = {
  ready: false, error: null, frames: 0, index: 0, names: [], splats: 0,
  playing: true, held: null, sequence: [], startedAt: performance.now(), waiters: [],
};

function weightsAt(i) {
  if (!state.sequence.length) return {};
  return state.sequence[((i % state.sequence.length) + state.sequence.length) % state.sequence.length];
}

// LAM's renderer calls this once per frame of its requestAnimationFrame loop
function getExpressionData() {
  state.frames += 1;
  if (state.playing && state.sequence.length)
    state.index = Math.floor(((performance.now() - state.startedAt) / 1000) * fps) % state.sequence.length;
  // every morph target gets a value each frame: LAM's renderer keeps the last value of a name left out
  const out = Object.fromEntries(state.names.map((n) => [n, 0]));
  Object.assign(out, state.held || weightsAt(state.index));
  const pending = state.waiters;
  state.waiters = [];
  for (const w of pending) (--w.n > 0 ? state.waiters.push(w) : w.resolve(state.frames));
  return out;
}

// LAM's getInstance logs its errors and returns undefined: keep what it logs for the report
const logged = [];
const consoleError = console.error.bind(console);
console.error = (...args) => { logged.push(args.map(String).join(" ")); consoleError(...args); };

function fail(message) {
  state.error = [String(message), ...logged].join("\n");
  consoleError("lam-check:", state.error);
}

window.addEventListener("error", (e) => fail(e.message));
window.addEventListener("unhandledrejection", (e) => fail(e.reason && (e.reason.stack || e.reason.message || e.reason)));

window.lamCheck = {
  get ready() { return state.ready; },
  get error() { return state.error; },
  get frames() { return state.frames; },
  get index() { return state.index; },
  get names() { return state.names; },
  get splats() { return state.splats; },
  get length() { return state.sequence.length; },
  headBone() {
    const mesh = window.lamRenderer && window.lamRenderer.viewer && window.lamRenderer.viewer.skinModel;
    const bone = mesh && mesh.skeleton.bones.find((b) => b.name === "head");
    return bone ? bone.quaternion.toArray() : null;
  },
  play() { state.held = null; state.playing = true; state.startedAt = performance.now() - (state.index / fps) * 1000; },
  pause() { state.playing = false; },
  seek(i) { state.held = null; state.playing = false; state.index = i; },
  setWeights(obj) { state.held = obj ? { ...obj } : null; if (obj) state.playing = false; },
  snapshot() {
    // LAM's loop asked for this frame's requestAnimationFrame before this one (first thing in its render()),
    // so this callback runs right after that frame's draw, in the same animation frame
    const canvas = window.lamRenderer.viewer.renderer.domElement;
    return new Promise((resolve) => requestAnimationFrame(() => resolve(canvas.toDataURL("image/png"))));
  },
  body(on) { window.lamRenderer.mixer.timeScale = on ? 1 : 0; },  // private in LAM's TypeScript, readable here
  settle(n = 3) { return new Promise((resolve) => state.waiters.push({ n, resolve })); },
};

async function loadSequence() {
  if (!seqUrl) return;
  const seq = await (await fetch(seqUrl)).json();
  state.sequence = seq.frames.map((f) => Object.fromEntries(seq.names.map((n, k) => [n, f.weights[k]])));
}

function describe() {
  const viewer = window.lamRenderer && window.lamRenderer.viewer;  // private in LAM's TypeScript, readable here
  const mesh = viewer && viewer.skinModel;
  state.names = mesh && mesh.morphTargetDictionary ? Object.keys(mesh.morphTargetDictionary) : [];
  state.splats = viewer ? viewer.gaussianSplatCount : 0;
  state.ready = true;
}

async function main() {
  if (!zipUrl) throw new Error("no ?zip= given");
  await loadSequence();
  const container = document.getElementById("lam");
  const renderer = await GaussianSplatRenderer.getInstance(container, zipUrl, {
    getChatState: () => "Idle",
    getExpressionData,
    backgroundColor: params.get("bg") || "0xffffff",
    loadProgress: (p) => {
      // 1: the splats are in and the renderer's loop starts; ready once it has drawn a few frames
      if (p >= 1) window.lamCheck.settle(3).then(describe);
    },
  });
  // getInstance logs and swallows its own errors, returning undefined
  if (!renderer) throw new Error("LAM's GaussianSplatRenderer.getInstance failed (see the console)");
  // getInstance returns before the splats are in (its draw loop starts when they are). Its Viewer reveals
  // a scene with a fade-in that advances a fixed step per drawn frame (1.2 % of the radius): ~400 frames,
  // seconds on a GPU but minutes in software WebGL, and nothing shows until it is well along. Show the
  // loaded splats at once (the Viewer's own option, SceneRevealMode.Instant); nothing else is changed.
  renderer.viewer.sceneRevealMode = SceneRevealMode.Instant;
  if (params.get("fov")) {
    renderer.viewer.camera.fov = Number(params.get("fov"));
    renderer.viewer.camera.updateProjectionMatrix();  // the Viewer derives its focal length from this each frame
  }
  window.lamRenderer = renderer;
}

main().catch((e) => fail(e && (e.stack || e.message || e)));
