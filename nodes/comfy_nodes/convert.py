"""Conversions between ComfyUI's media types and what the engine works with."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import torch
from PIL import Image


def image_to_uint8(image: torch.Tensor, index: int = 0) -> np.ndarray:
    """IMAGE (B, H, W, C float 0..1) → uint8 (H, W, C) of batch item ``index``."""
    if image.ndim != 4:
        raise ValueError(f"expected an IMAGE batch (B, H, W, C), got shape {tuple(image.shape)}")
    arr = image[index].detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return arr


def image_to_rgb(image: torch.Tensor, index: int = 0) -> np.ndarray:
    arr = image_to_uint8(image, index)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def rgb_to_image(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) → IMAGE (1, H, W, 3) float."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).float().div(255).unsqueeze(0)


def save_image_input(image: torch.Tensor | None, folder: str, stem: str) -> str | None:
    """Store an optional IMAGE input (first of the batch) as a PNG named by its content."""
    if image is None:
        return None
    arr = image_to_uint8(image)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(arr.shape[2])
    if mode is None:
        raise ValueError(f"{stem}: unsupported channel count {arr.shape[2]}")
    im = Image.fromarray(arr if mode != "L" else arr[:, :, 0], mode)
    digest = hashlib.sha256(arr.tobytes()).hexdigest()[:16]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{stem}_{digest}.png")
    if not os.path.exists(path):
        im.save(path, compress_level=1)
    return path


def audio_to_clip(audio: dict | None):
    """ComfyUI AUDIO {"waveform": (B, C, N), "sample_rate"} → engine AudioClip (first batch item)."""
    if audio is None:
        return None
    from ..engine.audio_mix import AudioClip
    wave = audio["waveform"]
    if wave.ndim == 2:
        wave = wave.unsqueeze(0)
    return AudioClip(wave[0].detach().cpu().float().numpy(), int(audio["sample_rate"]))


def clip_to_audio(samples: np.ndarray, sample_rate: int) -> dict:
    """float32 (C, N) or (N,) → ComfyUI AUDIO."""
    arr = np.asarray(samples, np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    return {"waveform": torch.from_numpy(np.ascontiguousarray(arr)).unsqueeze(0), "sample_rate": int(sample_rate)}
