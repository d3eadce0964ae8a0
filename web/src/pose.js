// Re-posing a live pack under rig controls: the browser's copy of model.head.rig.deform followed by
// HeadSplatAvatar._pose (model/ours/avatar.py). The rules are listed in model/ours/live.py; the tests
// compare this code's output with the server's Gaussians (tests/test_live.py).
// Written by hand: it is our own rig, and no library knows it. Scalars are float64 (as numpy's), the
// outputs float32 (as the server's Gaussians).

/** R = R_y(yaw) R_x(pitch) R_z(roll), row-major [9] (model.head.fitting.rotation_from_euler). */
export function rotationFromEuler(yaw, pitch, roll) {
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  const cr = Math.cos(roll), sr = Math.sin(roll);
  // ry @ rx
  const a = [cy, sy * sp, sy * cp, 0, cp, -sp, -sy, cy * sp, cy * cp];
  // (ry @ rx) @ rz, rz = [[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]]
  return [a[0] * cr + a[1] * sr, -a[0] * sr + a[1] * cr, a[2],
    a[3] * cr + a[4] * sr, -a[3] * sr + a[4] * cr, a[5],
    a[6] * cr + a[7] * sr, -a[6] * sr + a[7] * cr, a[8]];
}

/**
 * Controls (the rig's names: ARKit's 52 blendshapes and headYaw/headPitch/headRoll, model.head.rig.CONTROLS)
 * -> {values: {control: value} clipped to its range, ignored: [names that move nothing here]}. Names the
 * pack has no control for (tongueOut, header.arkit_ignored, and unknown names) and non-finite values are
 * reported in `ignored` rather than thrown: a sequence recorded elsewhere must still play.
 */
export function normalizeControls(header, controls) {
  const specs = Object.fromEntries(header.controls.map((c) => [c.name, c]));
  const values = {};
  const ignored = [];
  for (const [name, raw] of Object.entries(controls || {})) {
    const v = Number(raw);
    const c = Object.hasOwn(specs, name) ? specs[name] : null;
    if (!c || !Number.isFinite(v)) { ignored.push(name); continue; }
    values[name] = Math.min(c.max, Math.max(c.min, v));
  }
  return { values, ignored };
}

/**
 * eyeLook* weights -> gaze [[yaw, pitch] right eye, [yaw, pitch] left eye] radians from the rest face's
 * (model.head.rig.gaze_from_arkit): per eye, Out turns it away from the nose (the right eye towards -x,
 * the left towards +x), In towards it, Down > 0 pitch, Up < 0; degrees at weight 1 from deg
 * (header.eye_look_deg = rig.EYE_LOOK_DEG).
 */
export function gazeFromArkit(c, deg) {
  const r = Math.PI / 180;
  return [["Right", -1], ["Left", 1]].map(([side, outSign]) => {
    const w = (x) => c[`eyeLook${x}${side}`] || 0;
    return [outSign * (deg.Out * r * w("Out") - deg.In * r * w("In")), deg.Down * r * w("Down") - deg.Up * r * w("Up")];
  });
}

/** R(a + g) R(a)^T, row-major [9]: the turn by g of an eyeball that looks in direction a = (yaw, pitch). */
export function eyeTurn(a, g) {
  const A = rotationFromEuler(a[0] + g[0], a[1] + g[1], 0), B = rotationFromEuler(a[0], a[1], 0);
  const M = new Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) M[i * 3 + j] = A[i * 3] * B[j * 3] + A[i * 3 + 1] * B[j * 3 + 1] + A[i * 3 + 2] * B[j * 3 + 2];
  }
  return M;
}

export class Poser {
  constructor(pack) {
    const { header, s } = pack;
    this.header = header;
    this.s = s;
    const c = header.counts;
    this.V = c.vertices;
    this.T = c.gaussians;
    this.U = c.used_faces;
    this.X = new Float64Array(this.V * 3); // deformed vertices, then the surface
    this.N = new Float64Array(this.V * 3); // vertex normals
    this.faceQuat = new Float64Array(this.U * 4);
    this.faceGrow = new Float64Array(this.U);
    this.centers = new Float32Array(this.T * 3);
    this.quats = new Float32Array(this.T * 4); // (w, x, y, z) as the server's
    this.scales = new Float32Array(this.T * 3);
    this.rgb = s.rgb;
    this.opacity = s.opacity;
    // the triangles that touch a vertex with hair: only those vertices' normals are needed (a tenth of them)
    const F = s.faces, hairFaces = [];
    for (let f = 0; f < F.length; f += 3) {
      if (s.hair[F[f]] || s.hair[F[f + 1]] || s.hair[F[f + 2]]) hairFaces.push(f);
    }
    this.hairFaces = Uint32Array.from(hairFaces);
  }

  /** controls (the rig's: ARKit names + head pose) -> this.centers / quats / scales re-posed; returns the clipped values. */
  pose(controls) {
    const out = this.place(controls);
    this.gaussianFrames();
    return out;
  }

  /** What the viewer needs each update: this.centers, and each used triangle's frame (faceQuat, faceGrow),
   * which all its Gaussians share; pose() spreads the frames per Gaussian (the server's form). */
  place(controls) {
    const { values, ignored } = normalizeControls(this.header, controls);
    this.deform(values);
    this.surface();
    this.faceFrames();
    this.gaussianCentres();
    return { values, ignored };
  }

  deform(c) {
    const { s, X, V } = this;
    X.set(s.vertices);
    const names = this.header.expressions;
    for (let k = 0; k < names.length; k++) {
      const w = c[names[k]] || 0;
      if (!w) continue;
      const f = w * s.delta_scale[k];
      for (let e = s.delta_start[k]; e < s.delta_start[k + 1]; e++) {
        const i = s.delta_index[e] * 3;
        X[i] += f * s.delta_value[e * 3];
        X[i + 1] += f * s.delta_value[e * 3 + 1];
        X[i + 2] += f * s.delta_value[e * 3 + 2];
      }
    }
    // the gaze, per eye: the pack's eyeballs look in eye_rest[k] (the photo's gaze); eyeLook* turn them from it
    const gaze = gazeFromArkit(c, this.header.eye_look_deg);
    [s.eyeball_r, s.eyeball_l].forEach((ids, k) => {
      if (!gaze[k][0] && !gaze[k][1]) return;
      const R = eyeTurn(this.header.eye_rest[k], gaze[k]);
      const ce = this.header.eye_centres[k];
      for (const id of ids) rotateAbout(X, id * 3, R, ce, 1);
    });
    const hy = c.headYaw || 0, hp = c.headPitch || 0, hr = c.headRoll || 0;
    if (hy || hp || hr) {
      const R = rotationFromEuler(hy, hp, hr);
      const p = this.header.neck_pivot;
      for (let v = 0; v < V; v++) {
        const w = s.neck_weight[v];
        if (w) rotateAbout(X, v * 3, R, p, w);
      }
    }
  }

  surface() {
    // area-weighted vertex normals (model.head.mesh.vertex_normals), then the hair offset along them; the
    // normals summed over the triangles that touch a hair vertex only, in the faces' order (the same sums
    // at those vertices; the others' normals are not used)
    const { s, X, N, V, hairFaces } = this;
    N.fill(0);
    const F = s.faces;
    for (let k = 0; k < hairFaces.length; k++) {
      const f = hairFaces[k];
      const i0 = F[f] * 3, i1 = F[f + 1] * 3, i2 = F[f + 2] * 3;
      const e1x = X[i1] - X[i0], e1y = X[i1 + 1] - X[i0 + 1], e1z = X[i1 + 2] - X[i0 + 2];
      const e2x = X[i2] - X[i0], e2y = X[i2 + 1] - X[i0 + 1], e2z = X[i2 + 2] - X[i0 + 2];
      const n0 = e1y * e2z - e1z * e2y, n1 = e1z * e2x - e1x * e2z, n2 = e1x * e2y - e1y * e2x;
      N[i0] += n0; N[i0 + 1] += n1; N[i0 + 2] += n2;
      N[i1] += n0; N[i1 + 1] += n1; N[i1 + 2] += n2;
      N[i2] += n0; N[i2 + 1] += n1; N[i2 + 2] += n2;
    }
    for (let v = 0; v < V; v++) {
      const h = s.hair[v];
      if (!h) continue;
      const i = v * 3;
      const ln = Math.sqrt(N[i] * N[i] + N[i + 1] * N[i + 1] + N[i + 2] * N[i + 2]) + 1e-30;
      X[i] += h * N[i] / ln; X[i + 1] += h * N[i + 1] / ln; X[i + 2] += h * N[i + 2] / ln;
    }
  }

  faceFrames() {
    // each used triangle's tangent frame (t, n x t, n) as a quaternion, and its growth factor
    // (model.ours.binding.face_quaternions and HeadSplatAvatar._pose)
    const { s, X, U, faceQuat: Q, faceGrow } = this;
    const F = s.faces;
    for (let u = 0; u < U; u++) {
      const f = s.used_faces[u] * 3;
      const i0 = F[f] * 3, i1 = F[f + 1] * 3, i2 = F[f + 2] * 3;
      const e1x = X[i1] - X[i0], e1y = X[i1 + 1] - X[i0 + 1], e1z = X[i1 + 2] - X[i0 + 2];
      const e2x = X[i2] - X[i0], e2y = X[i2 + 1] - X[i0 + 1], e2z = X[i2 + 2] - X[i0 + 2];
      let nx = e1y * e2z - e1z * e2y, ny = e1z * e2x - e1x * e2z, nz = e1x * e2y - e1y * e2x;
      const ln = Math.sqrt(nx * nx + ny * ny + nz * nz) + 1e-30;
      const area = 0.5 * ln;
      nx /= ln; ny /= ln; nz /= ln;
      const a = s.uv_coef[u * 2], b = s.uv_coef[u * 2 + 1];
      let tx = a * e1x + b * e2x, ty = a * e1y + b * e2y, tz = a * e1z + b * e2z;
      const d = tx * nx + ty * ny + tz * nz;
      tx -= d * nx; ty -= d * ny; tz -= d * nz;
      let lt = Math.sqrt(tx * tx + ty * ty + tz * tz);
      if (lt < 1e-12) {
        if (Math.abs(nz) < 0.9) { tx = ny; ty = -nx; tz = 0; } else { tx = 0; ty = nz; tz = -ny; }
        lt = Math.sqrt(tx * tx + ty * ty + tz * tz) + 1e-30;
      }
      tx /= lt; ty /= lt; tz /= lt;
      const bx = ny * tz - nz * ty, by = nz * tx - nx * tz, bz = nx * ty - ny * tx;
      matrixToQuat(tx, bx, nx, ty, by, ny, tz, bz, nz, Q, u * 4);
      const rest = Math.max(s.rest_area[u], 1e-12);
      faceGrow[u] = Math.sqrt(Math.min(9, Math.max(1, area / rest)));
    }
  }

  gaussianCentres() {
    const { s, X, T, centers } = this;
    const F = s.faces, slot = s.slot, used = s.used_faces, bary = s.bary;
    for (let t = 0; t < T; t++) {
      const f = used[slot[t]] * 3;
      const b1 = bary[t * 2] / 65535, b2 = bary[t * 2 + 1] / 65535, b0 = 1 - b1 - b2;
      const i0 = F[f] * 3, i1 = F[f + 1] * 3, i2 = F[f + 2] * 3;
      const o = t * 3;
      centers[o] = b0 * X[i0] + b1 * X[i1] + b2 * X[i2];
      centers[o + 1] = b0 * X[i0 + 1] + b1 * X[i1 + 1] + b2 * X[i2 + 1];
      centers[o + 2] = b0 * X[i0 + 2] + b1 * X[i1 + 2] + b2 * X[i2 + 2];
    }
  }

  gaussianFrames() {
    const { s, T, faceQuat: Q, faceGrow, quats, scales } = this;
    for (let t = 0; t < T; t++) {
      const u = s.slot[t], o = t * 3;
      const q = u * 4, g = faceGrow[u];
      quats[t * 4] = Q[q]; quats[t * 4 + 1] = Q[q + 1]; quats[t * 4 + 2] = Q[q + 2]; quats[t * 4 + 3] = Q[q + 3];
      scales[o] = s.scales[o] * g;
      scales[o + 1] = s.scales[o + 1] * g;
      scales[o + 2] = s.scales[o + 2];
    }
  }
}

function rotateAbout(X, i, R, c, w) {
  // p' = p + w (R (p - c) + c - p)
  const x = X[i] - c[0], y = X[i + 1] - c[1], z = X[i + 2] - c[2];
  const rx = R[0] * x + R[1] * y + R[2] * z, ry = R[3] * x + R[4] * y + R[5] * z, rz = R[6] * x + R[7] * y + R[8] * z;
  X[i] += w * (rx - x); X[i + 1] += w * (ry - y); X[i + 2] += w * (rz - z);
}

function matrixToQuat(m00, m01, m02, m10, m11, m12, m20, m21, m22, out, o) {
  // the same branches as model.ours.binding._face_quaternions, (w, x, y, z)
  const tr = m00 + m11 + m22;
  let w, x, y, z, s;
  if (tr > 0) {
    s = Math.sqrt(tr + 1) * 2; w = 0.25 * s; x = (m21 - m12) / s; y = (m02 - m20) / s; z = (m10 - m01) / s;
  } else if (m00 > m11 && m00 > m22) {
    s = Math.sqrt(1 + m00 - m11 - m22) * 2; w = (m21 - m12) / s; x = 0.25 * s; y = (m01 + m10) / s; z = (m02 + m20) / s;
  } else if (m11 > m22) {
    s = Math.sqrt(1 + m11 - m00 - m22) * 2; w = (m02 - m20) / s; x = (m01 + m10) / s; y = 0.25 * s; z = (m12 + m21) / s;
  } else {
    s = Math.sqrt(1 + m22 - m00 - m11) * 2; w = (m10 - m01) / s; x = (m02 + m20) / s; y = (m12 + m21) / s; z = 0.25 * s;
  }
  out[o] = w; out[o + 1] = x; out[o + 2] = y; out[o + 3] = z;
}
