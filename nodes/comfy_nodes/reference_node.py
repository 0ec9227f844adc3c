"""ReferenceAnalyze: a reference ad (VIDEO or a file in the input folder) → its pacing and structure."""
from __future__ import annotations

import os
import shutil
import tempfile

from ..engine.models import AdReelInputError
from ..engine.script.reference import analyze_reference, describe, parse_structure
from ..engine import limits
from .api import (CATEGORY, ReferenceType, input_file_path, input_video_files, io, private_directory,
                  prompt_allowance, ui)

FROM_INPUT = "(video input)"


def _video_path(video, workdir: str) -> str:
    """A file ffmpeg can read for a ComfyUI VIDEO (its own file when it has one)."""
    source = None
    try:
        source = video.get_stream_source()
    except Exception:
        source = None
    if isinstance(source, str) and os.path.isfile(source):
        return source
    path = os.path.join(workdir, "reference.mp4")
    if source is not None and hasattr(source, "read"):
        source.seek(0)
        with open(path, "wb") as f:
            shutil.copyfileobj(source, f, 1 << 20)
        return path
    video.save_to(path)
    return path


class ReferenceAnalyze(io.ComfyNode):
    OPEN_COMBOS = ("file",)  # any video in the input folder (an upload, a subfolder): validate_inputs checks it

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ReferenceAnalyze",
            display_name="Reference Analyze",
            category=CATEGORY,
            description=("Measures a reference ad's pacing: shot boundaries by ffmpeg scene detection, shot count, "
                         "mean / median shot length, duration and aspect. Connect it to ScriptLLM's reference input "
                         "and the new script follows that pacing (and the structure, when you name it)."),
            inputs=[
                io.Combo.Input("file", options=[FROM_INPUT] + input_video_files(), default=FROM_INPUT,
                               upload=io.UploadType.video,
                               tooltip="A video in ComfyUI's input folder (or upload one); ignored when a VIDEO "
                                       "is connected."),
                io.Video.Input("video", optional=True, tooltip="A reference VIDEO from any node (Load Video …)."),
                io.Float.Input("threshold", default=0.3, min=0.05, max=0.95, step=0.01, optional=True,
                               tooltip="ffmpeg scene-change score that counts as a cut (lower finds more cuts)."),
                io.Float.Input("min_shot_seconds", default=0.25, min=0.0, max=10.0, step=0.05, optional=True,
                               tooltip="Cuts closer than this to the previous one are ignored (flashes)."),
                io.String.Input("structure", default="", optional=True,
                                tooltip="The reference's segments, one per shot, e.g. hook, problem, solution, "
                                        "proof, cta (empty: pacing only)."),
                io.String.Input("tone", default="", optional=True, tooltip="The reference's tone, if you want it."),
            ],
            outputs=[ReferenceType.Output(display_name="reference"),
                     io.String.Output(display_name="reference_json"),
                     io.Int.Output(display_name="shot_count"),
                     io.Float.Output(display_name="mean_shot_seconds")],
        )

    @classmethod
    def validate_inputs(cls, file, structure=None):
        if file != FROM_INPUT and file is not None and input_file_path(file) is None:
            return "file: is not a file in ComfyUI's input folder"
        if structure:
            try:
                parse_structure(structure)
            except AdReelInputError as e:
                return str(e)
        return True

    @classmethod
    def fingerprint_inputs(cls, file, **_):
        path = input_file_path(file) if file and file != FROM_INPUT else None
        return os.path.getmtime(path) if path else ""

    @classmethod
    def execute(cls, file, video=None, threshold=0.3, min_shot_seconds=0.25, structure="", tone="") -> io.NodeOutput:
        with tempfile.TemporaryDirectory(dir=private_directory()) as workdir:
            if video is not None:
                path = _video_path(video, workdir)
            elif file and file != FROM_INPUT:
                path = input_file_path(file)
                if path is None:
                    raise AdReelInputError("file", "is not a file in ComfyUI's input folder")
            else:
                raise AdReelInputError("video", "connect a reference VIDEO or choose a file from the input folder")
            ref = analyze_reference(path, threshold=threshold, min_shot_seconds=min_shot_seconds,
                                    structure=structure, tone=tone,
                                    allowance=prompt_allowance(limits.MAX_MEDIA_SECONDS))
        return io.NodeOutput(ref, ref.model_dump_json(indent=2), ref.shot_count, ref.mean_shot_seconds,
                             ui=ui.PreviewText(describe(ref)))
