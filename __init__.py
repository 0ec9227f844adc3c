"""AdReel: brand brief → finished short ad video, inside ComfyUI."""
from .nodes.comfy_nodes import comfy_entrypoint  # noqa: F401

WEB_DIRECTORY = "./js"
