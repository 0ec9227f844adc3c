"""AdReel's ComfyUI node layer: thin V3 node classes over the engine."""
from .api import ComfyExtension, io


class AdReelExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        from .brief_node import BrandBrief
        from .script_node import ScriptLLM
        from .storyboard_node import StoryboardSplit
        from .keyimage_node import BrandImage, SceneKeyImage
        from .motion_node import MotionClip
        from .assemble_node import FFmpegAssemble
        from .narration_node import SceneNarration
        from .music_node import MusicBed
        from .upload_node import AssetUpload
        from .provider_node import ProviderRender
        from .reference_node import ReferenceAnalyze

        return [BrandBrief, ScriptLLM, StoryboardSplit, SceneKeyImage, MotionClip, FFmpegAssemble, AssetUpload,
                SceneNarration, MusicBed, ReferenceAnalyze, ProviderRender, BrandImage]


async def comfy_entrypoint() -> AdReelExtension:
    return AdReelExtension()
