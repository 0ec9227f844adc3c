"""The one place AdReel imports ComfyUI's node API.

A future API version (``comfy_api.v0_0_x`` / ``latest``) is a change here only.
"""
from comfy_api.latest import ComfyExtension, Input, InputImpl, Types, io, ui  # noqa: F401
from comfy_api.latest import ComfyAPI  # noqa: F401

# Custom types that carry AdReel's engine objects between nodes.
BriefType = io.Custom("ADREEL_BRIEF")
ScriptType = io.Custom("ADREEL_SCRIPT")
StoryboardType = io.Custom("ADREEL_STORYBOARD")
SceneType = io.Custom("ADREEL_SCENE")

CATEGORY = "AdReel"


# ComfyUI services the nodes use: folders, progress, interrupts.
def output_directory() -> str:
    import folder_paths
    return folder_paths.get_output_directory()


def temp_directory() -> str:
    import folder_paths
    return folder_paths.get_temp_directory()


def save_path(filename_prefix: str, width: int, height: int):
    """(folder, filename, counter, subfolder, prefix) inside the output folder.

    ComfyUI refuses a prefix that would escape the output folder.
    """
    import folder_paths
    return folder_paths.get_save_image_path(filename_prefix, folder_paths.get_output_directory(), width, height)


class Progress:
    """The node's progress bar plus a line of progress text."""

    def __init__(self, total: int, node_id: str | None = None):
        import comfy.utils
        self.bar = comfy.utils.ProgressBar(total)
        self.node_id = node_id

    def update(self, value: int, text: str | None = None) -> None:
        self.bar.update_absolute(value)
        if text and self.node_id:
            send_progress_text(text, self.node_id)


def send_progress_text(text: str, node_id: str) -> None:
    try:
        from server import PromptServer
        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # no server (e.g. a script run): progress text is optional
        pass


def interrupted() -> bool:
    import comfy.model_management
    return comfy.model_management.processing_interrupted()


def raise_if_interrupted() -> None:
    import comfy.model_management
    comfy.model_management.throw_exception_if_processing_interrupted()


def check_combos(values: dict, options: dict) -> bool | str:
    """Submit-time check of combo values (ComfyUI 0.3.75 skips V3 combos).

    For a node's ``validate_inputs``: True, or a message naming the field.
    Linked inputs arrive as None and are left to the run.
    """
    for name, val in values.items():
        for v in (val if isinstance(val, list) else [val]):
            if v is not None and v not in options[name]:
                return f"{name}: {v!r} is not one of {', '.join(map(str, options[name]))}"
    return True
