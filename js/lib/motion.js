// AdReel — the camera moves of MotionClip, drawn on a <canvas> for the node's preview.
//
// A port of nodes/engine/motion/camera.py (camera_transform, media/frames.py ease_in_out and the
// inverse affine of CameraMoveClip): the same zoom, offsets and angle at the
// same progress, so the preview moves the way the encoded clip does. The
// browser test compares a canvas frame with the engine's frame.
//
// Pure module: no imports, no side effects.

export const CAMERA_MOVES = ["zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "drift", "rotate", "pulse", "static"];

export function easeInOut(p) {
  p = Math.min(1, Math.max(0, p));
  return p < 0.5 ? 4 * p ** 3 : 1 - (-2 * p + 2) ** 3 / 2;
}

/** [zoom, offsetX, offsetY, angleDeg] of the virtual camera at progress p (engine: camera_transform). */
export function cameraTransform(move, p, width, height, strength = 1.0) {
  const e = easeInOut(p);
  const s = 0.12 * strength;
  switch (move) {
    case "zoom_in": return [1 + s * e, 0, 0, 0];
    case "zoom_out": return [1 + s * (1 - e), 0, 0, 0];
    case "pan_left": case "pan_right": case "pan_up": case "pan_down": {
      const z = 1 + s;
      const spanX = width * (1 - 1 / z) / 2 * z, spanY = height * (1 - 1 / z) / 2 * z;
      const d = (2 * e - 1) * 0.95;
      const dx = move === "pan_left" ? d * spanX : move === "pan_right" ? -d * spanX : 0;
      const dy = move === "pan_up" ? d * spanY : move === "pan_down" ? -d * spanY : 0;
      return [z, dx, dy, 0];
    }
    case "drift": {
      const z = 1 + s * (0.6 + 0.4 * e);
      const spanX = width * (1 - 1 / z) / 2 * z, spanY = height * (1 - 1 / z) / 2 * z;
      return [z, (0.5 - e) * spanX * 0.9, (0.5 - e) * spanY * 0.6, 0];
    }
    case "rotate": {
      const ang = (e - 0.5) * 3.0 * strength;
      const a = (1.5 * strength) * Math.PI / 180;
      const cover = Math.max(Math.cos(a) + (height / width) * Math.sin(a), Math.cos(a) + (width / height) * Math.sin(a));
      return [cover * (1 + 0.02 * strength) + s * 0.3 * e, 0, 0, ang];
    }
    case "pulse":
      return [1 + s * 0.35 * (0.5 - 0.5 * Math.cos(2 * Math.PI * 2 * p)) + s * 0.2 * e, 0, 0, 0];
    default:
      return [1, 0, 0, 0];
  }
}

/**
 * Draw frame `frame` of a clip of `frameCount` frames: the image cover-fitted to the
 * canvas, moved by the camera. The canvas size is the output size (or a scaled copy of it).
 */
export function drawCameraFrame(ctx, image, move, frame, frameCount, strength = 1.0) {
  const W = ctx.canvas.width, H = ctx.canvas.height;
  const sw = image.naturalWidth || image.width, sh = image.naturalHeight || image.height;
  const p = frame / Math.max(1, frameCount - 1);
  const [zoom, dx, dy, angle] = cameraTransform(move, p, W, H, strength);
  const cover = Math.max(W / sw, H / sh);
  const k = zoom * cover; // source → output scale
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  // out = R(-angle) · k · (src − src centre) + out centre + offset   (inverse of the engine's matrix)
  ctx.translate((W - 1) / 2 + dx + 0.5, (H - 1) / 2 + dy + 0.5);
  ctx.rotate(-angle * Math.PI / 180);
  ctx.scale(k, k);
  ctx.drawImage(image, -(sw - 1) / 2 - 0.5, -(sh - 1) / 2 - 0.5);
  ctx.restore();
}
