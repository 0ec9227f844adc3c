"""AdReel's Python package: ``engine`` (plain Python) and ``comfy_nodes`` (the ComfyUI layer)."""
