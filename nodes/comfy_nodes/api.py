"""The one place AdReel imports ComfyUI's node API.

A future API version (``comfy_api.v0_0_x`` / ``latest``) is a change here only.
"""
from comfy_api.latest import ComfyExtension, Input, InputImpl, Types, io, ui  # noqa: F401
from comfy_api.latest import ComfyAPI  # noqa: F401

from ..engine.media.files import is_inside

# Custom types that carry AdReel's engine objects between nodes.
BriefType = io.Custom("ADREEL_BRIEF")
ScriptType = io.Custom("ADREEL_SCRIPT")
StoryboardType = io.Custom("ADREEL_STORYBOARD")
SceneType = io.Custom("ADREEL_SCENE")

CATEGORY = "AdReel"


def _register_font_folder() -> None:
    """Font files a workflow may name: ComfyUI's ``models/fonts`` (besides the fonts fontconfig knows);
    never input/output/temp, where anyone can upload."""
    try:
        import os
        import folder_paths
        from ..engine.media.fonts import register_font_dir
        register_font_dir(os.path.join(folder_paths.models_dir, "fonts"))
    except Exception:  # no ComfyUI (a script run): fontconfig's fonts and the pack's own
        pass


_register_font_folder()


def _register_tts_folder() -> None:
    """Piper voices a user adds (NAME.onnx + NAME.onnx.json): ComfyUI's ``models/tts`` as the
    ``tts`` model folder (extra_model_paths.yaml may add more), offered by SceneNarration."""
    try:
        import os
        import folder_paths
        from ..engine.speech.piper_voice import register_piper_dir
        folder_paths.add_model_folder_path("tts", os.path.join(folder_paths.models_dir, "tts"), is_default=True)
        for path in folder_paths.get_folder_paths("tts"):
            register_piper_dir(path)
    except Exception:  # no ComfyUI (a script run): the bundled voice only
        pass


_register_tts_folder()


def _register_brands_folder() -> None:
    """Brand kits (``<brands>/<name>/brand.json`` + the kit's files): ComfyUI's ``models/brands`` as the
    ``brands`` folder (extra_model_paths.yaml may add more). Font files in a kit's folder may be named."""
    try:
        import os
        import folder_paths
        from ..engine.media.fonts import register_font_dir
        folder_paths.add_model_folder_path("brands", os.path.join(folder_paths.models_dir, "brands"), is_default=True)
        for path in folder_paths.get_folder_paths("brands"):
            register_font_dir(path)
    except Exception:  # no ComfyUI (a script run): no kits
        pass


_register_brands_folder()


def brand_roots() -> list[str]:
    """The folders that hold brand kits, the one kits are saved in first."""
    try:
        import folder_paths
        return list(folder_paths.get_folder_paths("brands"))
    except Exception:
        return []


# ComfyUI services the nodes use: folders, progress, interrupts.
def output_directory() -> str:
    import folder_paths
    return folder_paths.get_output_directory()


def input_directory() -> str:
    import folder_paths
    return folder_paths.get_input_directory()


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


def combo_options(node_cls) -> dict[str, list]:
    """The options of every combo input of a node, as its ``define_schema()`` declares them now."""
    schema = node_cls.define_schema()
    return {i.id: list(i.options or []) for i in (schema.inputs or []) if isinstance(i, io.Combo.Input)}


def _check_combo_inputs(node_cls, **values) -> bool | str:
    """Submit-time check of combo values against the node's own schema, as it lists them now.

    ``_check_combo_inputs(cls, fps=fps, resolution=resolution)`` → True, or a message naming the field (never
    the value). Linked inputs arrive as None and are left to the run; lists (``is_input_list`` nodes) are
    checked item by item. Every node gets it through ``guard_combos``.
    """
    options = combo_options(node_cls)
    for name, val in values.items():
        allowed = options[name]  # KeyError: not a combo of this node (a bug in the node, not in the prompt)
        for v in (val if isinstance(val, list) else [val]):
            if v is not None and v not in allowed:
                return f"{name}: is not one of {', '.join(map(str, allowed))}"
    return True


def guard_combos(node_cls):
    """``node_cls`` with a ``validate_inputs`` that first checks every combo of its schema against the options
    the schema lists at that moment (a file list or a voice list may have changed), then runs the node's own
    check. Idempotent.

    ComfyUI 0.3.75 does not check V3 combos at all, and later cores answer with the value itself ("'x' not
    in [...]"): so each combo is named in the signature (ComfyUI then leaves it to us) and a refusal names
    the field and its options, never what was sent. A combo that takes values beyond its list (a model
    name an API prompt may give, an uploaded file) is named in the node's ``OPEN_COMBOS`` and left to the
    node's own ``validate_inputs``."""
    if getattr(node_cls, "_adreel_combos_guarded", False):
        return node_cls
    names = list(combo_options(node_cls))
    checked = [n for n in names if n not in getattr(node_cls, "OPEN_COMBOS", ())]
    if names:
        check_first(node_cls, names, lambda values: _combo_problem(node_cls, checked, values),
                    guard_combos.__doc__)
    node_cls._adreel_combos_guarded = True
    return node_cls


def _combo_problem(node_cls, names: list[str], values: dict) -> str | None:
    found = _check_combo_inputs(node_cls, **{n: values.get(n) for n in names}) if names else True
    return None if found is True else found


def guard(node_cls):
    """A node as AdReel registers it: texts (``guard_texts``), numbers (``guard_numbers``) and combos
    (``guard_combos``) checked at ``/prompt`` in that order, then the node's own ``validate_inputs``."""
    return guard_texts(guard_numbers(guard_combos(node_cls)))


# Sampling with the user's own models: the code ComfyUI's KSampler runs.
def sampler_names() -> list[str]:
    import comfy.samplers
    return list(comfy.samplers.KSampler.SAMPLERS)


def scheduler_names() -> list[str]:
    import comfy.samplers
    return list(comfy.samplers.KSampler.SCHEDULERS)


def model_config_names(model) -> list[str]:
    """Class names of the checkpoint's ComfyUI model config, most specific first (SDXL, SD15, Flux …)."""
    return [c.__name__ for c in type(model.model.model_config).__mro__]


def latent_channels(model) -> int:
    return int(model.get_model_object("latent_format").latent_channels)


def vae_latent_channels(vae) -> int:
    return int(getattr(vae, "latent_channels", 4))


def vae_downscale(vae) -> int:
    ratio = vae.spacial_compression_encode()
    return int(ratio if isinstance(ratio, int) else 8)


def encode_text(clip, text: str):
    """CONDITIONING for ``text``, exactly as CLIPTextEncode makes it."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def ksample(model, conditioning: tuple, latent: dict, seed: int, sampling) -> dict:
    """KSampler's own code path (``nodes.common_ksampler``: noise, latent previews, progress).

    ``conditioning``: (positive, negative); ``sampling``: its steps, cfg, sampler_name, scheduler and denoise."""
    import nodes as comfy_core_nodes  # ComfyUI's top-level nodes.py, not this pack
    positive, negative = conditioning
    s = sampling
    return comfy_core_nodes.common_ksampler(model, seed, s.steps, s.cfg, s.sampler_name, s.scheduler, positive,
                                            negative, latent, denoise=s.denoise)[0]


def empty_latent(width: int, height: int, downscale: int = 8) -> dict:
    """EmptyLatentImage (the sampler widens the channels for 16-channel models)."""
    import torch
    import comfy.model_management
    return {"samples": torch.zeros([1, 4, height // downscale, width // downscale],
                                   device=comfy.model_management.intermediate_device())}


def vae_encode(vae, image) -> dict:
    return {"samples": vae.encode(image[:, :, :, :3])}


def vae_decode(vae, latent: dict):
    images = vae.decode(latent["samples"])
    if images.ndim == 5:  # video VAEs
        images = images.reshape(-1, images.shape[-3], images.shape[-2], images.shape[-1])
    return images


def is_interrupt(exc: BaseException) -> bool:
    """A user's cancel: never swallowed by a fallback."""
    import comfy.model_management
    return isinstance(exc, comfy.model_management.InterruptProcessingException)


def send_preview(node_id: str | None, pil_image, value: int, total: int) -> None:
    """Progress plus a preview image on the node (the way samplers show their previews)."""
    import comfy.utils
    comfy.utils.ProgressBar(total, node_id=node_id).update_absolute(value, total, ("JPEG", pil_image, 512))


# Reference ads (ReferenceAnalyze → ScriptLLM): the ReferenceStyle object.
ReferenceType = io.Custom("ADREEL_REFERENCE")


def input_video_files() -> list[str]:
    """Video files in ComfyUI's input folder (what LoadVideo lists)."""
    import os
    import folder_paths
    folder = folder_paths.get_input_directory()
    try:
        files = [f for f in os.listdir(folder) if os.path.isfile(os.path.join(folder, f))]
    except OSError:
        return []
    return sorted(folder_paths.filter_files_content_types(files, ["video"]))


def input_file_path(name: str) -> str | None:
    """The path of ``name`` in the input folder, or None if absent or outside it."""
    import os
    import folder_paths
    if not name or not folder_paths.exists_annotated_filepath(name):
        return None
    path = os.path.realpath(folder_paths.get_annotated_filepath(name))
    return path if _inside_comfy_folders(path) else None


def metadata_disabled() -> bool:
    """ComfyUI's ``--disable-metadata``: no prompt or workflow in saved files."""
    try:
        from comfy.cli_args import args
        return bool(getattr(args, "disable_metadata", False))
    except Exception:  # no ComfyUI (a script run)
        return False


def add_get_route(path: str, handler) -> bool:
    """Serve ``GET path`` from ComfyUI's own server (an aiohttp handler); False without a server."""
    try:
        from server import PromptServer
        PromptServer.instance.routes.get(path)(handler)
        return True
    except Exception:  # no server (a script run, tests of the engine)
        return False


def add_put_route(path: str, handler) -> bool:
    """Serve ``PUT path`` from ComfyUI's own server; False without a server."""
    try:
        from server import PromptServer
        PromptServer.instance.routes.put(path)(handler)
        return True
    except Exception:
        return False


def progress_bar(total: int):
    """A bare ComfyUI progress bar (the executing node's), for ``update_bar_keeping_interrupt``."""
    import comfy.utils
    return comfy.utils.ProgressBar(total)


def update_bar_keeping_interrupt(bar, value: int) -> bool:
    """Move ``bar`` without consuming a pending interrupt; False when the run is being interrupted.

    ComfyUI's progress hook raises (and clears) the interrupt flag. Code that polls
    ``interrupted()`` to cancel remote jobs must not lose it to a progress update.
    """
    import comfy.model_management as mm
    if mm.processing_interrupted():
        return False
    try:
        bar.update_absolute(value)
    except mm.InterruptProcessingException:
        mm.interrupt_current_processing(True)  # put the flag back for whoever waits on it
        return False
    return True


# Non-finite numbers never pass /prompt. JSON's NaN/Infinity tokens are accepted by ComfyUI, and its
# min/max check lets NaN through (every comparison with NaN is False); a NaN in a stored prompt then
# breaks /history and /queue for every browser. ``guard_numbers`` wraps a node's ``validate_inputs`` so
# every FLOAT input of its schema must be a finite number within the widget's min/max.
_GUARDED_NODE_IDS: set[str] = set()


def _float_specs(node_cls) -> dict[str, tuple[float | None, float | None]]:
    schema = node_cls.define_schema()
    _GUARDED_NODE_IDS.add(schema.node_id)
    _install_prompt_guard()
    specs = {}
    for inp in schema.inputs:
        if getattr(inp, "io_type", None) == "FLOAT":
            specs[inp.id] = (getattr(inp, "min", None), getattr(inp, "max", None))
    return specs


def number_problem(specs: dict, values: dict) -> str | None:
    """The first FLOAT value that is not finite or lies outside its min/max, as a message naming it."""
    import math
    for name, (lo, hi) in specs.items():
        val = values.get(name)
        for v in (val if isinstance(val, list) else [val]):
            if v is None or isinstance(v, bool):
                continue  # a linked input: its value is known only when the graph runs
            if isinstance(v, str) and NON_FINITE_REFUSED in v:  # scrub_non_finite's mark: it was NaN / inf
                return f"{name}: must be a finite number"
            try:
                f = float(v)
            except (TypeError, ValueError):
                return f"{name}: must be a number"
            if not math.isfinite(f):
                return f"{name}: must be a finite number"
            if lo is not None and f < lo:
                return f"{name}: {f:g} is smaller than the minimum {lo:g}"
            if hi is not None and f > hi:
                return f"{name}: {f:g} is bigger than the maximum {hi:g}"
    return None


NON_FINITE_REFUSED = "a non-finite number was refused here"


def _finite_number(value) -> bool:
    """True for a value ``float()`` turns into a finite number (what ComfyUI does with ``number``)."""
    import math
    if isinstance(value, (bool, int)):
        return isinstance(value, bool) or abs(value) < 1e308
    if isinstance(value, (float, str)):
        try:
            return math.isfinite(float(value))
        except (ValueError, OverflowError):
            return False
    return False


def scrub_non_finite(json_data, node_ids=None) -> dict:
    """``POST /prompt``'s body with no non-finite number left anywhere in it.

    Every value at any depth and of any node (core nodes and other packs too: ``/history`` and ``/queue``
    are shared by everyone), under ``prompt``, ``extra_data`` or anywhere else, is walked (iteratively: a
    deeply nested body cannot overflow the stack): a NaN / ±Infinity float — a value, a dict key, in a
    list, in ``{"__value__": [...]}`` — becomes a string saying so (``NON_FINITE_REFUSED``, naming the input
    for an input's own value), which ComfyUI's FLOAT conversion then refuses, naming the input. The queue
    position ``number``, which ComfyUI passes through ``float()``, is dropped unless it is a finite number
    (``"NaN"``, ``"-inf"``, ``1e999`` and non-numbers included). Never raises: ComfyUI would swallow the
    error and go on with a half-scrubbed body.

    Why here and not only in ``validate_inputs``: ComfyUI queues a prompt whose *other* outputs are valid,
    and stores the whole prompt (NaN included) in /history, which browsers then cannot parse.
    ``node_ids`` is accepted for compatibility; every node is walked."""
    import math
    if not isinstance(json_data, dict):
        return json_data

    def bad(v) -> bool:
        return isinstance(v, float) and not math.isfinite(v)

    try:
        if "number" in json_data and not _finite_number(json_data["number"]):
            json_data.pop("number")
        stack = [(json_data, "")]
        while stack:
            container, name = stack.pop()
            if isinstance(container, dict):
                for key in list(container.keys()):
                    value = container[key]
                    if bad(key):  # only a Python caller can make one; JSON keys are strings
                        del container[key]
                        key = NON_FINITE_REFUSED
                        container[key] = value
                    label = key if isinstance(key, str) and len(key) <= 64 and key.isidentifier() else name
                    if bad(value):
                        container[key] = f"{label}: {NON_FINITE_REFUSED}" if label else NON_FINITE_REFUSED
                    elif isinstance(value, (dict, list)):
                        stack.append((value, label))
            elif isinstance(container, list):
                for i, value in enumerate(container):
                    if bad(value):
                        container[i] = f"{name}: {NON_FINITE_REFUSED}" if name else NON_FINITE_REFUSED
                    elif isinstance(value, (dict, list)):
                        stack.append((value, name))
    except Exception:  # never leave ComfyUI a half-walked body without saying so
        import logging
        logging.getLogger("adreel").exception("AdReel: could not scrub a /prompt body")
    return json_data


def drop_dangling_links(json_data) -> dict:
    """``POST /prompt``'s body with no undeclared input linking to a node the prompt does not hold.

    ComfyUI's validation checks only the inputs a node declares; its executor then follows every link-shaped
    input (``["node id", output]``), declared or not, and a link to a missing node raises outside any
    handler, in the thread that runs the queue: that thread dies and the server never runs another prompt.
    A node cannot read an input it does not declare, so such an input is removed; a declared input linking
    to a missing node is left to ComfyUI's validation, which refuses the prompt. Never raises."""
    try:
        prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
        if not isinstance(prompt, dict):
            return json_data
        import nodes as core_nodes
        from comfy_execution.graph_utils import is_link  # what the executor follows as a link
        for node in prompt.values():
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if not isinstance(inputs, dict):
                continue
            dangling = [name for name, value in inputs.items() if is_link(value) and value[0] not in prompt]
            if not dangling:
                continue
            cls = core_nodes.NODE_CLASS_MAPPINGS.get(node.get("class_type"))
            declared = set()
            if cls is not None:
                for group in cls.INPUT_TYPES().values():
                    declared.update(group if isinstance(group, dict) else ())
            for name in dangling:
                if name not in declared:
                    del inputs[name]
    except Exception:  # never leave ComfyUI a half-walked body without saying so
        import logging
        logging.getLogger("adreel").exception("AdReel: could not check a /prompt body's links")
    return json_data


def guard_prompt_body(json_data) -> dict:
    """What AdReel checks of every ``POST /prompt`` body (every node's, not only its own): no non-finite
    number anywhere, no undeclared input linking to a missing node."""
    return drop_dangling_links(scrub_non_finite(json_data))


_prompt_guard_installed = False


def _install_prompt_guard() -> None:
    global _prompt_guard_installed
    if _prompt_guard_installed:
        return
    try:
        from server import PromptServer
        PromptServer.instance.add_on_prompt_handler(guard_prompt_body)
        _prompt_guard_installed = True
    except Exception:  # no server (a script run): validate_inputs still refuses them
        pass


def check_first(node_cls, names: list[str], problem, doc: str | None = None) -> None:
    """Give ``node_cls`` a ``validate_inputs`` that runs ``problem(values)`` first (a message refuses the
    prompt), then the node's own ``validate_inputs``. ComfyUI passes exactly the inputs the signature names:
    it names ``names`` and the node's own parameters (and ``**values`` when the node's own takes them)."""
    import inspect
    own = node_cls.__dict__.get("validate_inputs")
    own_func = own.__func__ if isinstance(own, classmethod) else None
    own_params = inspect.signature(own_func).parameters if own_func else {}
    own_names = [n for n in list(own_params)[1:]
                 if own_params[n].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    own_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own_params.values())

    def validate_inputs(cls, **values):
        found = problem(values)
        if found:
            return found
        if own_func is None:
            return True
        args = values if own_kwargs else {k: v for k, v in values.items() if k in own_names}
        return own_func(cls, **args)

    params = [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + \
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
         for n in dict.fromkeys([*names, *own_names])]
    if own_kwargs:
        params.append(inspect.Parameter("values", inspect.Parameter.VAR_KEYWORD))
    validate_inputs.__signature__ = inspect.Signature(params)
    validate_inputs.__doc__ = (own_func.__doc__ if own_func else None) or doc
    node_cls.validate_inputs = classmethod(validate_inputs)


def guard_numbers(node_cls):
    """``node_cls`` with a ``validate_inputs`` that first refuses non-finite (and out-of-range) FLOAT
    inputs, derived from its schema, then runs the node's own check. Idempotent."""
    if getattr(node_cls, "_adreel_numbers_guarded", False):
        return node_cls
    specs = _float_specs(node_cls)
    if not specs:
        return node_cls
    # ComfyUI passes exactly the inputs the signature names (and skips its own min/max check for
    # them): the FLOAT inputs are named, besides the node's own parameters.
    check_first(node_cls, list(specs), lambda values: number_problem(specs, values), guard_numbers.__doc__)
    node_cls._adreel_numbers_guarded = True
    return node_cls


# Every text a node accepts is bounded before it is processed (ADREEL_MAX_TEXT_CHARS, limits.text_problem):
# ``guard_texts`` gives a node, derived from its schema, a ``validate_inputs`` that refuses an over-long
# STRING widget at /prompt, and an ``execute`` that refuses an over-long text at run time (a linked input's
# value is known only then). Separate from ``guard_numbers`` and composable with it.
def _string_ids(node_cls) -> list[str]:
    return [inp.id for inp in node_cls.define_schema().inputs if getattr(inp, "io_type", None) == "STRING"]


def guard_texts(node_cls):
    """``node_cls`` whose STRING inputs are at most ADREEL_MAX_TEXT_CHARS long: at /prompt and when it runs.
    Idempotent; the node's own ``validate_inputs`` (or ``guard_numbers``') runs after the check."""
    import functools
    import inspect
    from ..engine.limits import text_problem
    if getattr(node_cls, "_adreel_texts_guarded", False):
        return node_cls
    ids = _string_ids(node_cls)
    if not ids:
        return node_cls

    def first_problem(values: dict) -> str | None:
        for name in ids:
            problem = text_problem(values.get(name), name)
            if problem:
                return problem
        return None

    check_first(node_cls, ids, first_problem, guard_texts.__doc__)

    run = node_cls.__dict__["execute"].__func__
    if inspect.iscoroutinefunction(run):
        @functools.wraps(run)
        async def execute(cls, *args, **kwargs):
            problem = first_problem(kwargs)
            if problem:
                raise ValueError(problem)
            return await run(cls, *args, **kwargs)
    else:
        @functools.wraps(run)
        def execute(cls, *args, **kwargs):
            problem = first_problem(kwargs)
            if problem:
                raise ValueError(problem)
            return run(cls, *args, **kwargs)
    node_cls.execute = classmethod(execute)
    node_cls._adreel_texts_guarded = True
    return node_cls


# Frame scaling as ComfyUI's Resize Image node does it (VIDEO.as_resized on AdReel's lazy clips).
UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos", "bislerp")
RESIZE_CROPS = ("disabled", "center")


def image_scaler(width: int, height: int, upscale_method: str, crop: str = "disabled"):
    """uint8 RGB (h, w, 3) → uint8 RGB (height, width, 3) through ``comfy.utils.common_upscale``."""
    if upscale_method not in UPSCALE_METHODS:
        raise ValueError(f"upscale_method: is not one of {', '.join(UPSCALE_METHODS)}")
    if crop not in RESIZE_CROPS:
        raise ValueError(f"crop: is not one of {', '.join(RESIZE_CROPS)}")

    def scale(rgb):
        import numpy as np
        import torch
        import comfy.utils
        t = torch.from_numpy(np.ascontiguousarray(rgb)).float().div_(255).unsqueeze(0).movedim(-1, 1)
        out = comfy.utils.common_upscale(t, int(width), int(height), upscale_method, crop)
        return out.movedim(1, -1)[0].clamp(0, 1).mul(255).round().byte().numpy()

    return scale


# The prompt a node runs in, for the per-prompt ceilings (engine/budget.py). ComfyUI's executor sets
# comfy_execution.utils' context (prompt id, node id) around every node's execute, sync or async, in
# 0.3.75 and 0.33 alike; the server's last_prompt_id is the fallback of older builds.
def executing_prompt_id() -> str | None:
    try:
        from comfy_execution.utils import get_executing_context
        ctx = get_executing_context()
        if ctx is not None and ctx.prompt_id:
            return str(ctx.prompt_id)
    except Exception:  # an older ComfyUI, or no executor
        pass
    try:
        from server import PromptServer
        return getattr(PromptServer.instance, "last_prompt_id", None)
    except Exception:  # no server (a script run): every node is a prompt of its own
        return None


def running_prompt_ids() -> set[str] | None:
    """The ids of the prompts ComfyUI is executing now (None without a server)."""
    try:
        from server import PromptServer
        running, _ = PromptServer.instance.prompt_queue.get_current_queue_volatile()
        return {str(item[1]) for item in running}
    except Exception:
        return None


def prompt_allowance(ceiling):
    """The executing prompt's share of a server ceiling (``limits.MAX_COST_USD`` …), shared by all its nodes."""
    from ..engine.budget import Allowance
    return Allowance(ceiling, executing_prompt_id(), running_prompt_ids())


# AdReel's own files (key images, copies of a brief's images, per-scene files, assembly work) live in a
# folder of this process that ComfyUI does not serve and /upload/image cannot write: never in input/,
# output/ or temp/, where any network user may upload under any name.
import threading  # noqa: E402

PRIVATE_DIR_ENV = "ADREEL_PRIVATE_DIR"
_private_root: str | None = None
_private_lock = threading.Lock()


def _inside_comfy_folders(path: str) -> bool:
    """Whether ``path`` (links resolved) lies in ComfyUI's input, output or temp folder: the one check for
    a file AdReel may read from there, and for a folder AdReel must not write its own files in."""
    try:
        import folder_paths
        roots = [folder_paths.get_directory_by_type(t) for t in ("input", "output", "temp")]
    except Exception:  # no ComfyUI (a script run)
        return False
    return is_inside(path, *roots)


def private_directory(*parts: str) -> str:
    """``<private root>/<parts…>``, created; the root is a fresh 0700 folder of this process (made with
    mkdtemp under ``ADREEL_PRIVATE_DIR`` or the system temp folder, removed at exit)."""
    import os
    global _private_root
    with _private_lock:  # scenes render on several threads: one root for the process
        if _private_root is None or not os.path.isdir(_private_root):
            _private_root = _make_private_root()
        root = _private_root
    path = os.path.join(root, *parts)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _make_private_root() -> str:
    """A fresh 0700 folder under ``ADREEL_PRIVATE_DIR`` (refused inside input/output/temp) or the system temp
    folder, removed when the process exits."""
    import atexit
    import logging
    import os
    import shutil
    import tempfile
    parent = os.environ.get(PRIVATE_DIR_ENV) or None
    if parent and _inside_comfy_folders(parent):
        logging.getLogger("AdReel").warning("%s is inside ComfyUI's input, output or temp folder, where anyone may "
                                            "upload: the system temp folder is used instead", PRIVATE_DIR_ENV)
        parent = None
    if parent:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    root = tempfile.mkdtemp(prefix="adreel-private-", dir=parent)  # 0700, a name nobody chose
    atexit.register(shutil.rmtree, root, True)
    return root
