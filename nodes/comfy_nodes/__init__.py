"""AdReel's ComfyUI node layer: thin V3 node classes over the engine."""
from ..engine.cloud.redaction import install_log_filter
from ..engine.cloud.secrets import register_environment_secrets
from .api import ComfyExtension, guard, io

# Every log record of the ComfyUI process (AdReel's loggers, their children and ComfyUI's own
# ``logging.error(traceback.format_exc())``) is redacted from the moment the pack loads.
install_log_filter()
register_environment_secrets()  # a secret's value is masked wherever it turns up: logs, errors, files


class AdReelExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        install_log_filter()  # again: handlers ComfyUI added since the import get the filter too
        from .brief_node import BrandBrief
        from .script_node import ScriptLLM
        from .storyboard_node import StoryboardSplit
        from .keyimage_node import SceneKeyImage
        from .brand_image_node import BrandImage
        from .motion_node import MotionClip
        from .assemble_node import FFmpegAssemble
        from .narration_node import SceneNarration
        from .music_node import MusicBed
        from .upload_node import AssetUpload
        from .provider_node import ProviderRender
        from .reference_node import ReferenceAnalyze
        from .product_page_node import ProductPage
        from .brand_kit_node import BrandKitSave
        from . import routes  # noqa: F401 - the cost badge's estimate and ScriptLLM's model list

        # every FLOAT input of every node refuses NaN/inf at /prompt (api.guard_numbers), every STRING input
        # refuses a text over ADREEL_MAX_TEXT_CHARS at /prompt and when the node runs (api.guard_texts), every
        # combo refuses a value its schema does not list (api.guard_combos)
        return [guard(n) for n in (BrandBrief, ScriptLLM, StoryboardSplit, SceneKeyImage, MotionClip,
                                   FFmpegAssemble, AssetUpload, SceneNarration, MusicBed, ReferenceAnalyze,
                                   ProviderRender, BrandImage, ProductPage, BrandKitSave)]


async def comfy_entrypoint() -> AdReelExtension:
    return AdReelExtension()
