"""The AdReel engine: plain Python, importable and testable without ComfyUI."""
