// Mirror mode: the visitor's webcam drives their avatar. Frames are captured and downscaled here, sent to
// the app one at a time (a hidden textbox's input event: a gradio call inside the visitor's own session,
// so one visitor's frames and controls never reach another's page), turned into rig controls on the
// server, and applied by the live viewer, which eases towards each new pose at display rate.
// Frames are never stored: the page keeps only the latest canvas, the server decodes them in memory.
//
// The server takes the first faces of each stream as the visitor's rest face (their face at rest is not the
// photo's); retakeRest() asks for it again.
//
// Page API: window.headsplat.mirror.start() / .stop() / .retakeRest() / .recordStart() / .recordStop() -> sequence
//           .stats() -> {running, updates, sent, lastLatencyMs, medianLatencyMs, notice, notices, recording}

export const MAX_SIDE = 640; // frames are downscaled to this long side before sending
export const MAX_SECONDS = 300; // a stream stops by itself after this long
const STALL_MS = 3000; // no answer for this long: say so and send the next frame
const MIN_GAP_MS = 40; // at most ~25 frames a second

export class Mirror {
  constructor(viewer) {
    this.viewer = viewer;
    this.running = false;
    this.updates = 0;
    this.sent = 0;
    this.latencies = [];
    this.notice = "";
    this.notices = []; // the distinct notices shown, oldest first (the last 20): what a visitor was told
    this.recording = null;
    if (typeof window !== "undefined") window.addEventListener("pagehide", () => this.stop());
  }

  el(id) {
    return document.getElementById(id);
  }

  async start() {
    if (this.running) return true;
    const video = this.el("mirror-cam");
    if (!video) throw new Error("the page has no #mirror-cam element");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.say("This browser gives no camera access to the page.");
      return false;
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (e) {
      this.say(`The camera could not be opened (${e.name}).`);
      return false;
    }
    video.srcObject = this.stream;
    await video.play().catch(() => {});
    this.canvas = document.createElement("canvas");
    this.running = true;
    this.startedAt = performance.now();
    this.inFlight = null;
    this.restNext = true;
    this.say("Mirror on: look at the camera with a relaxed face, then move.");
    this.stopOnHide = () => { if (document.hidden) this.stop("Mirror stopped: the tab was hidden."); };
    document.addEventListener("visibilitychange", this.stopOnHide);
    this.loop();
    return true;
  }

  stop(why = "Mirror stopped.") {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
    const video = this.el("mirror-cam");
    if (video) video.srcObject = null;
    document.removeEventListener("visibilitychange", this.stopOnHide);
    this.viewer.follow(null);
    this.say(why);
  }

  loop() {
    if (!this.running) return;
    const now = performance.now();
    if (now - this.startedAt > MAX_SECONDS * 1000) {
      this.stop(`Mirror stopped after ${MAX_SECONDS / 60} minutes: press start to go on.`);
      return;
    }
    if (this.inFlight && now - this.inFlight > STALL_MS) {
      this.say("The server is not answering: holding the last pose.");
      this.inFlight = null;
    }
    if (!this.inFlight) this.send();
    this.timer = setTimeout(() => this.loop(), MIN_GAP_MS);
  }

  send() {
    const video = this.el("mirror-cam");
    const box = document.querySelector("#mirror-frame textarea, #mirror-frame input");
    if (!video || !box || !video.videoWidth) return;
    const s = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
    const w = Math.round(video.videoWidth * s), h = Math.round(video.videoHeight * s);
    this.canvas.width = w;
    this.canvas.height = h;
    this.canvas.getContext("2d").drawImage(video, 0, 0, w, h);
    const t = performance.now();
    box.value = JSON.stringify({ t, jpeg: this.canvas.toDataURL("image/jpeg", 0.8), rest: this.restNext });
    this.restNext = false;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    this.inFlight = t;
    this.sent += 1;
  }

  /** The server's answer for one frame: {t, controls | null, notice | null, server_ms, stop?}. */
  onResult(text) {
    let r;
    try { r = JSON.parse(text); } catch { return; }
    if (!r || typeof r.t !== "number") return;
    if (this.inFlight === r.t) this.inFlight = null;
    this.latencies.push(performance.now() - r.t);
    if (this.latencies.length > 100) this.latencies.shift();
    if (r.controls) {
      this.updates += 1;
      this.viewer.follow(r.controls);
      if (this.recording) this.recording.push({ time: (performance.now() - this.recordT0) / 1000, controls: r.controls });
    }
    this.say(r.notice || "");
    if (r.stop) this.stop(r.notice || "Mirror stopped by the server.");
  }

  /** Take the visitor's rest face again from the next frames (look at the camera, face relaxed). */
  retakeRest() {
    this.restNext = true;
  }

  say(text) {
    this.notice = text;
    if (text && this.notices[this.notices.length - 1] !== text) {
      this.notices.push(text);
      if (this.notices.length > 20) this.notices.shift();
    }
    const n = this.el("mirror-notice");
    if (n) n.textContent = text;
  }

  recordStart() {
    this.recording = [];
    this.recordT0 = performance.now();
  }

  /** The recorded session as a control sequence (LAM's JSON format, model.head.rig.read_sequence). */
  recordStop() {
    const rec = this.recording || [];
    this.recording = null;
    const header = this.viewer.pack && this.viewer.pack.header;
    const names = header ? header.controls.map((c) => c.name).filter((n) => !n.startsWith("head")) : [];
    const seq = {
      names,
      frames: rec.map((f) => ({ time: f.time, weights: names.map((n) => f.controls[n] || 0) })),
      head_pose: rec.map((f) => [f.controls.headPitch || 0, f.controls.headYaw || 0, f.controls.headRoll || 0]),
    };
    const link = this.el("mirror-download");
    if (link && rec.length) {
      link.href = URL.createObjectURL(new Blob([JSON.stringify(seq)], { type: "application/json" }));
      link.download = "mirror_controls.json";
      link.textContent = `Download the recording (${rec.length} frames, JSON)`;
      link.hidden = false;
    }
    this.lastRecording = seq;
    return seq;
  }

  stats() {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return { running: this.running, updates: this.updates, sent: this.sent,
      lastLatencyMs: this.latencies.length ? this.latencies[this.latencies.length - 1] : null,
      medianLatencyMs: sorted.length ? sorted[sorted.length >> 1] : null, notice: this.notice,
      notices: [...this.notices],
      recording: !!this.recording };
  }
}
