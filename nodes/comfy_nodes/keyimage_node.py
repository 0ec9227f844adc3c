"""SceneKeyImage: scene → key image at the output aspect, composed, or sampled
with the user's own checkpoint through ComfyUI's KSampler code.

The key image is a native IMAGE whose pixels stay in a lossless PNG in
AdReel's private folder until a node uses them (``lazy_image.StillTensor``):
ComfyUI caches every scene's output, and a float IMAGE per scene would make
memory grow with the number of scenes. The PNG is never in ComfyUI's temp/,
which anyone may upload into; the preview the editor shows is a copy there
that AdReel writes again at every run and never reads."""
from __future__ import annotations

import logging
import os
import shutil

import numpy as np
from PIL import Image

from ..engine.keyimage.composed import StillImage, compose_key_image, load_image_file
from ..engine.keyimage.model_sizes import family_from_config_names, sample_size
from ..engine.models import AdReelInputError
from ..engine.media.frames import cover_fit
from ..engine.keyimage.sampled import (
    DEFAULT_NEGATIVE,
    DEFAULT_STYLE,
    ON_MODEL_ERROR,
    PRODUCT_MODES,
    SamplingWidgets,
    finish_sampled,
    sampling_note,
    sampled_problem,
    scene_prompts,
    scene_seed,
)
from . import api
from .api import CATEGORY, SceneType, io, private_directory, temp_directory
from .convert import image_to_rgb, rgb_to_image
from .lazy_image import StillTensor

KEY_IMAGE_SUBFOLDER = "adreel_keyimages"

DESCRIPTION = (
    "The scene's key image at the output aspect. Without a model: composed from the brand palette, the product "
    "image and the scene. With MODEL + CLIP + VAE connected: sampled through ComfyUI's own KSampler code, one "
    "seed per scene derived from `seed`, prompt = style + brand palette (as colour names) + the scene's image "
    "prompt, negative = shared negative + the scene's; at the size the model family was trained for (SD 1.5: "
    "512 short side, SD 2: 768, SDXL / SD3 / Flux: ~1 MP) at the output aspect, then cover-fitted to the frame. "
    "denoise < 1 starts from the composed image (brand layout) instead of noise. "
    "Product image: `composite` (default) pastes the real photo, exact pixels, over the sampled scene, because a "
    "model redraws labels, logos and shapes and a product in an ad must be the product; `img2img` lets the model "
    "repaint the composed image holding the photo (set denoise ~0.5 so it stays recognisable); `ignore` leaves it "
    "out. Fallback: with `composed key image`, a model that fails (error, NaN or blank output, wrong VAE) gives "
    "the composed key image instead, and the node says so. The key image carries no brand mark and no headline: "
    "FFmpegAssemble lays the logo, headline and CTA over the moving picture, where the camera cannot cut them. "
    "The IMAGE keeps its pixels in a PNG until a node uses them, so long ads with many scenes stay in flat memory.")


def preview_copy(path: str, folder: str) -> str:
    """A copy of ``path`` in ``folder`` (ComfyUI's temp, for the editor's preview), written atomically over
    whatever is there. Only the browser reads it; AdReel works from the private file."""
    os.makedirs(folder, exist_ok=True)
    dest = os.path.join(folder, os.path.basename(path))
    part = f"{dest}.{os.getpid()}.part"
    shutil.copyfile(path, part)
    os.replace(part, dest)
    return dest


class SceneKeyImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SceneKeyImage",
            display_name="Scene Key Image",
            category=CATEGORY,
            description=DESCRIPTION,
            inputs=[
                SceneType.Input("scene"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                             tooltip="One seed for the ad; each scene's sampling seed is derived from it and "
                                     "shown on the node."),
                io.String.Input("font", default="", optional=True,
                                tooltip="Font family (fontconfig) or font file; empty: Noto Sans CJK."),
                io.Model.Input("model", optional=True, tooltip="A checkpoint's MODEL: sample the key image with it."),
                io.Clip.Input("clip", optional=True, tooltip="The checkpoint's CLIP (text encoder)."),
                io.Vae.Input("vae", optional=True, tooltip="The checkpoint's VAE."),
                io.Int.Input("steps", default=20, min=1, max=200, optional=True),
                io.Float.Input("cfg", default=7.0, min=0.0, max=30.0, step=0.1, round=0.01, optional=True),
                io.Combo.Input("sampler_name", options=api.sampler_names(), default="euler", optional=True),
                io.Combo.Input("scheduler", options=api.scheduler_names(), default="normal", optional=True),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, optional=True,
                               tooltip="1: from noise. Less: from the composed key image (brand layout, product)."),
                io.String.Input("style", default=DEFAULT_STYLE, multiline=True, optional=True,
                                tooltip="Shared prompt prefix for every scene (the brand palette is added after it)."),
                io.String.Input("negative", default=DEFAULT_NEGATIVE, multiline=True, optional=True,
                                tooltip="Shared negative prompt, before each scene's own negative prompt."),
                io.Int.Input("sample_size", default=0, min=0, max=4096, step=16, optional=True,
                             tooltip="0: the model family's size. Otherwise the sampled image's short side (px)."),
                io.Combo.Input("product_image", options=list(PRODUCT_MODES), default="composite", optional=True,
                               tooltip="The brief's product photo over a sampled image: composite (exact pixels), "
                                       "img2img (model repaints it), ignore."),
                io.Combo.Input("fallback", options=list(ON_MODEL_ERROR), default=ON_MODEL_ERROR[0], optional=True,
                               tooltip="When the model fails: stop, or use the composed key image (said on the node)."),
            ],
            outputs=[io.Image.Output(display_name="image"),
                     io.String.Output(display_name="info", tooltip="How this key image was made (seed, size, "
                                                                    "fallback).")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, scene, model=None, clip=None, vae=None, **widgets) -> io.NodeOutput:
        w = SamplingWidgets.from_values(widgets)
        sc = scene.scene
        node_id = cls.hidden.unique_id if cls.hidden else None
        product = load_image_file(scene.product_image_path, "brief.product_image") if scene.product_image_path else None
        logo = load_image_file(scene.logo_path, "brief.logo") if scene.logo_path else None

        def composed(with_product=True) -> Image.Image:
            return compose_key_image(sc, scene.width, scene.height, scene.product,
                                     product_image=product if with_product else None, seed=w.seed,
                                     font=w.font or None, zone=scene.zone())

        def say(text: str) -> None:
            if node_id:
                api.send_progress_text(text, node_id)

        if model is None and clip is None and vae is None:
            img = composed()
            info = f"scene {sc.index}: composed key image (no model connected)"
        else:
            try:
                missing = [n for n, v in (("model", model), ("clip", clip), ("vae", vae)) if v is None]
                if missing:
                    raise AdReelInputError(missing[0], f"connect {', '.join(missing)} too: sampling needs a "
                                                       "checkpoint's MODEL, CLIP and VAE")
                img, info = cls._sample(scene, (model, clip, vae), w, product, logo, composed, say)
            except Exception as exc:  # the fallback chain: anything but the user's cancel
                if api.is_interrupt(exc) or w.fallback != "composed key image":
                    raise
                reason = exc.message if isinstance(exc, AdReelInputError) else f"{type(exc).__name__}: {exc}"
                logging.getLogger("AdReel").warning("SceneKeyImage scene %s: model failed, composed key image "
                                                    "used instead: %s", sc.index, reason[:300])
                img = composed()
                info = f"scene {sc.index}: FALLBACK — the model failed ({reason[:300]}); composed key image instead"
        say(info.splitlines()[0])
        if node_id:
            api.send_preview(node_id, img, 1, 1)
        still = StillImage.save(img, private_directory(KEY_IMAGE_SUBFOLDER))
        preview_copy(still.path, os.path.join(temp_directory(), KEY_IMAGE_SUBFOLDER))
        preview = api.ui.SavedImages([api.ui.SavedResult(os.path.basename(still.path), KEY_IMAGE_SUBFOLDER,
                                                         io.FolderType.temp)]).as_dict()
        return io.NodeOutput(StillTensor(still), info, ui={**preview, "text": [info]})

    @classmethod
    def _sample(cls, scene, checkpoint, w: SamplingWidgets, product, logo, composed, say):
        """The key image sampled with ``checkpoint`` (MODEL, CLIP, VAE), and what the node says of it."""
        sc, (model, clip, vae) = scene.scene, checkpoint
        model_ch, vae_ch = api.latent_channels(model), api.vae_latent_channels(vae)
        if model_ch != vae_ch:
            raise AdReelInputError("vae", f"the VAE makes {vae_ch}-channel latents but the model samples "
                                          f"{model_ch}-channel ones: connect the VAE that belongs to the checkpoint")
        family = family_from_config_names(api.model_config_names(model))
        width, height = sample_size(family, scene.width, scene.height, w.sample_size)
        s_seed = scene_seed(w.seed, sc.index)
        positive_text, negative_text = scene_prompts(sc, w.style, w.negative)
        say(f"scene {sc.index}: sampling {width}x{height} ({family.label}), seed {s_seed}, {w.steps} steps")
        positive, negative_c = api.encode_text(clip, positive_text), api.encode_text(clip, negative_text)
        down = api.vae_downscale(vae)
        if w.denoise < 1.0:  # img2img from the composed layout (and the product, unless it is composited later)
            init = np.asarray(composed(with_product=w.product_image == "img2img"))
            init = np.ascontiguousarray(cover_fit(init, width, height))
            latent = api.vae_encode(vae, rgb_to_image(init))
        else:
            latent = api.empty_latent(width, height, down)
        out = api.ksample(model, (positive, negative_c), latent, s_seed, w)
        decoded = api.vae_decode(vae, out)
        arr = decoded[0].float().cpu().numpy()
        problem = sampled_problem(arr)
        if problem:
            raise RuntimeError(problem)
        sampled = image_to_rgb(decoded[:1])
        img = finish_sampled(sampled, sc, scene.width, scene.height, product_image=product, logo=logo,
                             composite_product=w.product_image == "composite", zone=scene.zone())
        return img, sampling_note(sc.index, (sampled.shape[1], sampled.shape[0]), family.label, s_seed, w,
                                  (scene.width, scene.height), w.product_image if product is not None else None,
                                  (positive_text, negative_text))
