"""Conversions between ComfyUI's media types and what the engine works with.

Everything here takes input from any other pack (or a hostile workflow): an
IMAGE of 2 channels or 16384×16384 px, an AUDIO at 0 Hz or full of NaN. Each
gives an error naming the input, never a numpy/PIL/wave exception.
"""
from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np
import torch
from PIL import Image

from ..engine import limits
from ..engine.models import AdReelInputError

MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def check_image(image, field: str = "image") -> None:
    """An IMAGE batch (B, H, W, C) of a usable size: C in 1/3/4, at least 2×2 px, at most
    ADREEL_MAX_INPUT_PIXELS pixels; else an AdReelInputError naming ``field``."""
    shape = tuple(getattr(image, "shape", ()))
    if len(shape) != 4:
        raise AdReelInputError(field, f"expected an IMAGE batch (B, H, W, C), got shape {shape}")
    _, h, w, c = shape
    if c not in MODES:
        raise AdReelInputError(field, f"an IMAGE with {c} channels is not grey, RGB or RGBA")
    if h < 2 or w < 2:
        raise AdReelInputError(field, f"a {w}×{h} px image is too small: at least 2×2 px")
    cap = limits.MAX_INPUT_PIXELS.read()
    if w * h > cap:
        raise AdReelInputError(field, f"a {w}×{h} px image ({w * h / 1e6:.0f} MP) is more than this server takes "
                                      f"({cap / 1e6:g} MP, ADREEL_MAX_INPUT_PIXELS)")


def image_to_uint8(image: torch.Tensor, index: int = 0) -> np.ndarray:
    """IMAGE (B, H, W, C float 0..1) → uint8 (H, W, C) of batch item ``index``."""
    if image.ndim != 4:
        raise ValueError(f"expected an IMAGE batch (B, H, W, C), got shape {tuple(image.shape)}")
    arr = image[index].detach().cpu().nan_to_num(0.0).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return arr


def image_to_rgb(image: torch.Tensor, index: int = 0) -> np.ndarray:
    arr = image_to_uint8(image, index)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def image_to_pil(image: torch.Tensor, field: str, index: int = 0) -> Image.Image:
    """Batch item ``index`` of an IMAGE as a PIL image (L, RGB or RGBA), checked first."""
    check_image(image, field)
    arr = image_to_uint8(image, index)
    im = Image.fromarray(np.ascontiguousarray(arr if arr.shape[2] != 1 else arr[:, :, 0]))
    return im


def rgb_to_image(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) → IMAGE (1, H, W, 3) float."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).float().div(255).unsqueeze(0)


def pil_to_image(im: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
    """An RGBA PIL image → (IMAGE, MASK) as LoadImage gives them: RGBA only when it has transparency."""
    arr = np.asarray(im.convert("RGBA"))
    alpha = arr[..., 3]
    keep = arr if alpha.min() < 255 else arr[..., :3]
    tensor = torch.from_numpy(np.ascontiguousarray(keep)).float().div(255).unsqueeze(0)
    mask = 1.0 - torch.from_numpy(np.ascontiguousarray(alpha)).float().div(255).unsqueeze(0)
    return tensor, mask


def _holds(path: str, digest: str, mode: str, size: tuple[int, int]) -> bool:
    """``path`` is a regular PNG holding exactly the pixels named by ``digest`` (checked at every use)."""
    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        with Image.open(path) as im:
            if im.format != "PNG" or im.mode != mode or im.size != size:
                return False
            return hashlib.sha256(np.asarray(im).tobytes()).hexdigest()[:16] == digest
    except Exception:
        return False


def save_image_input(image: torch.Tensor | None, folder: str, stem: str, field: str | None = None) -> str | None:
    """Store an optional IMAGE input (first of the batch) as a PNG named by its content.

    Written atomically (a unique ``.part``, fsync, rename): a crash or a full disk never leaves a
    truncated PNG under the final name; a file found under that name is used only when it holds exactly
    these pixels, else it is written again. ``folder`` is AdReel's private folder, never ComfyUI's."""
    if image is None:
        return None
    im = image_to_pil(image, field or stem)
    arr = np.asarray(im)
    digest = hashlib.sha256(arr.tobytes()).hexdigest()[:16]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{stem}_{digest}.png")
    if _holds(path, digest, im.mode, im.size):
        return path
    fd, part = tempfile.mkstemp(prefix=f".{stem}_{digest}.", suffix=".png.part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            im.save(f, format="PNG", compress_level=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except BaseException:
        try:
            os.remove(part)
        except OSError:
            pass
        raise
    return path


def open_image_file(path: str, field: str) -> Image.Image:
    """An image file we stored earlier (a brief's logo): size checked before its pixels are read."""
    cap = limits.MAX_INPUT_PIXELS.read()
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > cap:
                raise AdReelInputError(field, f"a {w}×{h} px image ({w * h / 1e6:.0f} MP) is more than this "
                                              f"server takes ({cap / 1e6:g} MP, ADREEL_MAX_INPUT_PIXELS)")
            im.load()
            return im.copy()
    except AdReelInputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise AdReelInputError(field, f"cannot read the image {os.path.basename(path)!r}: {e}") from None


def audio_to_clip(audio: dict | None, field: str = "audio"):
    """ComfyUI AUDIO {"waveform": (B, C, N), "sample_rate"} → engine AudioClip (first batch item),
    checked: a usable sample rate, finite samples, a bounded length (``AudioClip.checked``)."""
    if audio is None:
        return None
    from ..engine.audio.mix import AudioClip
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise AdReelInputError(field, "is not an AUDIO (waveform + sample_rate)")
    wave = audio["waveform"]
    if not isinstance(wave, torch.Tensor) or wave.ndim not in (2, 3) or wave.shape[0] == 0:
        raise AdReelInputError(field, f"waveform of shape {tuple(getattr(wave, 'shape', ()))} is not (B, C, N)")
    if wave.ndim == 2:
        wave = wave.unsqueeze(0)
    clip = AudioClip.checked(wave[0].detach().cpu().float().numpy(), audio["sample_rate"], field)
    voice = audio.get(VOICE_KEY)
    clip.voice = voice if isinstance(voice, str) else None
    return clip


# An AUDIO made by SceneNarration also names its voice (core's nodes read only waveform and sample_rate)
VOICE_KEY = "adreel_voice"


def clip_to_audio(samples: np.ndarray, sample_rate: int, voice: str | None = None) -> dict:
    """float32 (C, N) or (N,) → ComfyUI AUDIO; ``voice``: who spoke it, as SceneNarration shows it."""
    arr = np.asarray(samples, np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    audio = {"waveform": torch.from_numpy(np.ascontiguousarray(arr)).unsqueeze(0), "sample_rate": int(sample_rate)}
    if voice:
        audio[VOICE_KEY] = voice
    return audio


def split_images(key_images) -> list:
    """IMAGE inputs (a list of batches) → single images (1, H, W, C)."""
    flat = []
    for batch in key_images or []:
        if batch is None:
            continue
        for b in range(int(batch.shape[0])):
            flat.append(batch[b:b + 1])
    return flat


def key_image_files(key_images, specs: list, private_folder: str) -> tuple[list, list]:
    """(the IMAGE for each scene of ``specs`` (SceneSpec) or None, its PNG under ``private_folder`` (AdReel's
    own, which nobody can upload into) or None)."""
    images = split_images(key_images)
    if images and len(images) not in (1, len(specs)):
        raise AdReelInputError("key_images", f"{len(images)} images for {len(specs)} scenes: connect one per "
                                             "scene (SceneKeyImage fed by StoryboardSplit) or a single image")
    per_scene = [images[i] if len(images) > 1 else (images[0] if images else None) for i in range(len(specs))]
    folder = os.path.join(private_folder, "adreel_key_images")
    paths = [save_image_input(img, folder, f"scene{spec.scene.index:03d}") if img is not None else None
             for img, spec in zip(per_scene, specs)]
    return per_scene, paths
