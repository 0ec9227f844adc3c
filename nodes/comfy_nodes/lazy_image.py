"""A ComfyUI IMAGE whose pixels live in a PNG on disk until someone uses them.

ComfyUI keeps every node's outputs in its cache, and a list of scenes keeps
one key image per scene: as float IMAGE tensors, about 25 MB each at
1080×1920, so a 180 s ad's 30 scenes would hold 750 MB for the whole session.
SceneKeyImage therefore outputs a ``StillTensor``: a real ``torch.Tensor``
subclass reporting the IMAGE's shape (1, H, W, 3), dtype float32 and device
cpu, which holds only the path of the key image's lossless PNG.

* Any operation on it (indexing, ``.cpu()``, ``.numpy()``, ``movedim``,
  arithmetic, ``torch.cat`` …) first decodes the PNG into an ordinary float
  tensor and runs on that: every other node (PreviewImage, SaveImage, VAE
  Encode, SVD conditioning, upscalers) gets the exact pixels, as from any
  IMAGE, and the decoded copy is freed when that node is done with it.
* AdReel's MotionClip asks for the ``StillImage`` behind it (``still_of``)
  and streams the camera move from the PNG, so the key image is decoded only
  while its scene is being encoded.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.overrides import resolve_name
from torch.utils._pytree import tree_map

from ..engine.keyimage.composed import StillImage

# what may be asked of the tensor without decoding it
_METADATA = {"shape", "dtype", "device", "size", "dim", "ndim", "ndimension", "__len__", "numel", "nelement",
             "element_size", "is_cuda", "is_cpu", "is_mps", "requires_grad", "layout", "is_sparse", "is_quantized",
             "is_meta", "is_nested", "is_floating_point", "is_complex", "names", "grad_fn", "grad", "is_leaf",
             "is_contiguous", "stride", "storage_offset", "__repr__", "__format__", "__hash__", "__bool__",
             "data_ptr"}


def _leaf_name(func) -> str:
    name = resolve_name(func) or getattr(func, "__name__", "") or ""
    parts = name.split(".")
    return parts[-2] if parts and parts[-1] in ("__get__", "__set__") and len(parts) > 1 else parts[-1]


class StillTensor(torch.Tensor):
    """IMAGE (1, H, W, 3) float32 backed by a ``StillImage`` (a PNG on disk)."""

    still: StillImage

    @staticmethod
    def __new__(cls, still: StillImage):
        t = torch.Tensor._make_wrapper_subclass(cls, (1, still.height, still.width, 3), dtype=torch.float32,
                                                device="cpu", requires_grad=False)
        t.still = still
        return t

    def __init__(self, still: StillImage):  # torch.Tensor's own __init__ takes no still
        pass

    def materialize(self) -> torch.Tensor:
        """The pixels as an ordinary IMAGE tensor (decoded now, not kept)."""
        return torch.from_numpy(np.ascontiguousarray(self.still.load())).float().div_(255).unsqueeze(0)

    @staticmethod
    def _plain(x):
        return x.materialize() if isinstance(x, StillTensor) else x

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _leaf_name(func) in _METADATA:
            if _leaf_name(func) == "data_ptr":
                raise RuntimeError("a StillTensor has no storage of its own: use its pixels (e.g. .contiguous())")
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        return func(*tree_map(cls._plain, args), **tree_map(cls._plain, kwargs))

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return func(*tree_map(cls._plain, args), **tree_map(cls._plain, kwargs or {}))

    def __reduce_ex__(self, protocol):  # pickles (torch.save, copy.deepcopy) as the plain IMAGE it stands for
        return self.materialize().__reduce_ex__(protocol)

    def __deepcopy__(self, memo):
        return StillTensor(self.still)

    def __repr__(self, *args, **kwargs) -> str:
        return f"StillTensor(IMAGE {tuple(self.shape)} float32, pixels in {self.still.path!r})"

    def get_ram_usage(self) -> int:  # ComfyUI's RAM-pressure cache asks outputs this
        return 0


def still_of(image) -> StillImage | None:
    """The StillImage behind an IMAGE from SceneKeyImage, else None (a plain tensor)."""
    return image.still if isinstance(image, StillTensor) else None
