"""Backbones: a batch of RGB frames -> region features [B, R, D] on a 7x7 grid (R = 49).

- `default`: weight-free and fast on a CPU. Fixed filters describe each grid cell by
  its colour (opponent-space mean and spread, a chroma-weighted hue histogram and the
  hue peak, which keeps small coloured objects visible), its shape and texture
  (oriented gradient energy, 4 orientations x 2 scales, and colour edges) and its
  motion (absolute difference with the previous sampled frame, mean and peak).
- `vgg19`: the paper's choice, the last conv block of VGG19 (7x7x512 at 224x224).
- `resnet50`, `resnet18`: the output of layer4 (7x7x2048 / 7x7x512).

CNN weights: ImageNet weights by default (`weights=None` or "imagenet"), taken from
torch hub's cache (`<TORCH_HOME>/hub/checkpoints`, `~/.cache/torch/hub/checkpoints` by
default) and downloaded into it by torchvision's own mechanism (the weights' URL,
`torch.hub.download_url_to_file` with its hash check and progress bar) when missing;
offline, a ProclError names the cache folder and the alternatives. Or a state_dict
file (`weights=PATH`), or random weights (`weights="none"`).
"""
from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from procl import ProclError
from procl.dist import local_world_size, resolve_device, threads

GRID = (7, 7)
CNN_INPUT_SIZE = 224  # as the ImageNet models were trained: 7x7 cells of 32x32 px
DEFAULT_INPUT_SIZE = 112  # the weight-free filters: 7x7 cells of 16x16 px, 4x cheaper
_SLICE = 8  # frames per forward call of the default backbone
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (torchvision builder, ImageNet weights file name in torch hub's cache, D, torchvision weights enum)
_CNNS = {
    "vgg19": ("vgg19", "vgg19-dcbb9e9d.pth", 512, "VGG19_Weights.IMAGENET1K_V1"),
    "resnet50": ("resnet50", "resnet50-0676ba61.pth", 2048, "ResNet50_Weights.IMAGENET1K_V1"),
    "resnet18": ("resnet18", "resnet18-f37072fd.pth", 512, "ResNet18_Weights.IMAGENET1K_V1"),
}
NAMES = ("default", *_CNNS)

WEIGHT_FREE = "none (weight-free)"
IMAGENET = "imagenet (torchvision cache)"
RANDOM = "random"


def available_cores() -> int:
    """Cores this process may run on: its share when torchrun started several
    processes on this machine (LOCAL_WORLD_SIZE), so they do not oversubscribe them."""
    if hasattr(os, "sched_getaffinity"):
        cores = max(1, len(os.sched_getaffinity(0)))
    else:
        cores = max(1, os.cpu_count() or 1)
    return max(1, cores // local_world_size())


class DefaultFeatures(nn.Module):
    """Weight-free region features: fixed filters, then pooling to the grid.

    Input: x [B + 1, 3, H, W] RGB in [0, 1]: the frame sampled before the batch (the
    first frame itself at the start of a video: zero motion), then the B frames.
    Output: [B, D, 7, 7] with D = 36, centred and scaled by fixed constants (not data
    statistics) so that every dimension spreads over about one unit on natural video:
      0-2   mean colour per cell (opponent space O1 = R-G, O2 = Y-B, O3 = intensity)
      3-5   colour spread (standard deviation of O1, O2, O3 in the cell)
      6-13  hue histogram: 8 hue bins of the (O1, O2) plane weighted by chroma, mean
      14-21 hue peak: the same bins, max over the cell of a 2x2-px average
      22-29 gradient energy of intensity, |g . u| for 4 orientations u, 2 scales
      30-31 colour edges: gradient magnitude of O1 and of O2
      32-34 motion: mean |difference| with the previous frame in O1, O2, O3
      35    motion peak: max over the cell of the 2x2-px average |difference| in O3
    Means of non-negative maps are square-rooted (power normalisation) so that a small
    object covering a few percent of a cell still moves its cell's vector.
    """

    N_HUE = 8
    D = 36

    def __init__(self) -> None:
        super().__init__()
        s2, s3, s6 = math.sqrt(2), math.sqrt(3), math.sqrt(6)
        opponent = torch.tensor(
            [[1 / s2, -1 / s2, 0.0], [1 / s6, 1 / s6, -2 / s6], [1 / s3, 1 / s3, 1 / s3]]
        )
        self.register_buffer("opponent", opponent.view(3, 3, 1, 1))
        # Hue bin k responds to chroma * (cos(hue - a_k) - cos(45 deg)) > 0, i.e. +-45
        # degrees around its direction a_k (neighbouring bins overlap): one 1x1 conv
        # over (O1, O2, chroma).
        angles = torch.arange(self.N_HUE) * (2 * math.pi / self.N_HUE)
        floor = math.cos(2 * math.pi / self.N_HUE)
        hue = torch.stack([angles.cos(), angles.sin(), torch.full_like(angles, -floor)], 1)
        self.register_buffer("hue", (hue / (1 - floor)).view(-1, 3, 1, 1))
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
        grad = torch.stack([sobel, sobel.t()])  # [2, 3, 3]: d/dx, d/dy
        self.register_buffer("grad", grad.repeat(3, 1, 1).unsqueeze(1))  # [6, 1, 3, 3]
        r = 1 / math.sqrt(2)
        orient = torch.tensor([[1.0, 0.0], [0.0, 1.0], [r, r], [r, -r]])  # 0, 90, 45, 135 deg
        self.register_buffer("orient", orient.view(4, 2, 1, 1))
        # Centre and scale of each output dimension: fixed constants, about the spread of
        # each group on the bundled kitchen clip and on synthetic video (one value per
        # group where its dimensions are alike, e.g. all hue bins).
        centre = torch.zeros(self.D)
        centre[2] = 0.866  # mid-grey intensity
        scale = torch.tensor(
            [0.1, 0.1, 0.3] + [0.04, 0.04, 0.08] + [0.12] * 8 + [0.1] * 8
            + [0.06] * 4 + [0.07] * 4 + [0.04] * 2 + [0.08, 0.08, 0.15] + [0.25]
        )
        self.register_buffer("centre", centre.view(1, -1, 1, 1))
        self.register_buffer("scale", scale.view(1, -1, 1, 1))

    def _gradients(self, o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Oriented energy of intensity [B, 4, h, w] and colour-edge magnitude [B, 2, h, w]."""
        g = F.conv2d(o, self.grad, padding=1, groups=3)  # [B, 6, h, w]: d/dx, d/dy of O1, O2, O3
        energy = F.conv2d(g[:, 4:6], self.orient).abs_()
        colour = g[:, :4].square().view(len(g), 2, 2, *g.shape[-2:]).sum(2).sqrt_()
        return energy, colour

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o_all = F.conv2d(x, self.opponent)  # [B + 1, 3, H, W]
        o = o_all[1:]
        motion = (o - o_all[:-1]).abs_()  # [B, 3, H, W]
        chroma = o[:, :2].square().sum(1, keepdim=True).sqrt_()  # [B, 1, H, W]
        hue = F.conv2d(torch.cat([o[:, :2], chroma], 1), self.hue).relu_()  # [B, 8, H, W]
        energy1, colour_edges = self._gradients(o)
        energy2, _ = self._gradients(F.avg_pool2d(o, 2))  # [B, 4, H/2, W/2]

        mean_o = _cells(o)
        spread = (_cells(o.square()) - mean_o.square()).clamp_min_(0).sqrt_()
        feats = torch.cat(
            [
                mean_o,
                spread,
                _cells(hue).sqrt_(),
                _peaks(hue),
                _cells(energy1).sqrt_(),
                _cells(energy2).sqrt_(),
                _cells(colour_edges).sqrt_(),
                _cells(motion).sqrt_(),
                _peaks(motion[:, 2:3]),
            ],
            1,
        )  # [B, 36, 7, 7]
        return (feats - self.centre) / self.scale


def _cells(m: torch.Tensor) -> torch.Tensor:
    """Mean of each grid cell: [B, C, h, w] -> [B, C, 7, 7]."""
    return F.adaptive_avg_pool2d(m, GRID)


def _peaks(m: torch.Tensor) -> torch.Tensor:
    """Max over each grid cell of a 2x2-px average (one stray pixel is not a peak)."""
    return F.adaptive_max_pool2d(F.avg_pool2d(m, 2), GRID)


class _CNNTrunk(nn.Module):
    """A torchvision classifier without its head: x [B, 3, 224, 224] -> [B, D, 7, 7].

    Submodules keep torchvision's names, so the classifier's state_dict loads into it
    (its head's entries are ignored). Built on the meta device first, so the head's
    parameters (120M for VGG19) are never allocated.
    """

    HEADS = ("classifier.", "fc.")

    def __init__(self, arch: str) -> None:
        super().__init__()
        import torchvision

        self.arch = arch
        with torch.device("meta"):
            model = getattr(torchvision.models, arch)(weights=None)
        keep = ["features"] if arch.startswith("vgg") else [
            "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        for name in keep:
            self.add_module(name, getattr(model, name))
        self.to_empty(device="cpu")
        # Random weights as torchvision initialises them, from a fixed seed: "random"
        # features stay the same from one extraction to the next.
        generator = torch.Generator().manual_seed(0)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def load(self, state: object, source: str) -> None:
        """Load a state_dict of the torchvision classifier (with or without its head)."""
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ProclError(f"weights {source}: not a state_dict of tensors (save model.state_dict())")
        body = {k: v for k, v in state.items() if not k.startswith(self.HEADS)}
        try:
            self.load_state_dict(body, strict=True)
        except RuntimeError as err:  # missing, unexpected or mis-shaped entries
            raise ProclError(
                f"weights {source}: not a torchvision {self.arch} state_dict ({str(err)[:300]})"
            ) from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch.startswith("vgg"):
            return self.features(x)  # [B, 512, 7, 7]: conv5_4 after pool5
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [B, D, 7, 7]


def imagenet_cache_file(name: str) -> Path:
    """Where torchvision keeps the ImageNet weights of a CNN backbone (may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / _CNNS[name][1]


def imagenet_weights(name: str):
    """torchvision's ImageNet weights entry of a CNN backbone (its url, meta)."""
    import torchvision

    return torchvision.models.get_weight(_CNNS[name][3])


_DOWNLOAD_LOCK = threading.Lock()


def fetch_imagenet(name: str, progress: bool = True,
                   on_progress: Callable[[int, int | None], None] | None = None) -> Path:
    """The ImageNet weights file of CNN backbone `name` in torch hub's cache, downloaded
    there first when it is missing.

    The download is torchvision's: the weights' URL, torch.hub.download_url_to_file
    (to a temporary file renamed when complete, SHA-256 prefix checked, a progress bar
    on stderr when `progress`). on_progress(bytes done, bytes total or None) is called
    as it goes. Offline or on any failure: a ProclError naming the cache folder, the
    file to put there and --weights PATH.
    """
    if name not in _CNNS:
        raise ProclError(f"{name!r} has no ImageNet weights; CNN backbones: {', '.join(_CNNS)}")
    cached = imagenet_cache_file(name)
    if cached.is_file():
        return cached
    weights = imagenet_weights(name)
    match = torch.hub.HASH_REGEX.search(cached.name)
    with _DOWNLOAD_LOCK:  # one download at a time (and the progress hook below is global)
        if cached.is_file():
            return cached
        hub = torch.hub
        original = hub.tqdm
        if on_progress is not None:
            class _Reporting(original):  # type: ignore[misc, valid-type]
                done = 0  # counted here: a disabled bar (progress=False) does not count

                def update(self, n=1):
                    result = super().update(n)
                    self.done += int(n or 0)
                    on_progress(self.done, int(self.total) if self.total else None)
                    return result

            hub.tqdm = _Reporting
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            hub.download_url_to_file(weights.url, str(cached), match.group(1) if match else None, progress=progress)
        except (OSError, RuntimeError) as err:  # URLError and HTTPError are OSErrors; a bad hash a RuntimeError
            reason = getattr(err, "reason", None) or err
            raise ProclError(
                f"the ImageNet weights of {name} could not be downloaded from {weights.url} ({reason}). "
                f"Offline? Copy {cached.name} into {cached.parent} (torch hub's cache; TORCH_HOME moves it), "
                f"or use --weights PATH (a {name} state_dict file), --weights none (random weights, for "
                "testing only) or --backbone default (weight-free)"
            ) from None
        finally:
            hub.tqdm = original
    return cached


def feature_dim(name: str) -> int:
    """D of a backbone, known without building it."""
    if name not in NAMES:
        raise ProclError(f"unknown backbone {name!r}; choose one of: {', '.join(NAMES)}")
    return DefaultFeatures.D if name == "default" else _CNNS[name][2]


def describe_weights(name: str, weights: str | None = None) -> str:
    """What `get_backbone(name, weights)` will use, checked without building the model.

    "none (weight-free)" for `default`; for a CNN: "imagenet (torchvision cache)" when
    weights is None or "imagenet" (downloaded into the cache when the model is built,
    see `fetch_imagenet`), "random" for "none", else the resolved path of a state_dict
    file. Raises ProclError naming the alternatives for an unknown backbone or a
    missing file.
    """
    if name not in NAMES:
        raise ProclError(f"unknown backbone {name!r}; choose one of: {', '.join(NAMES)}")
    if name == "default":
        if weights not in (None, "none"):
            raise ProclError(
                f"the default backbone is weight-free and takes no weights (got --weights {weights}); "
                "drop --weights or pick a CNN backbone (vgg19, resnet50, resnet18)"
            )
        return WEIGHT_FREE
    if weights == "none":
        return RANDOM
    if weights in (None, "imagenet"):
        return IMAGENET
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ProclError(
            f"weights file {path} not found; use --weights PATH (a {name} state_dict file), --weights imagenet "
            "(torchvision's ImageNet weights), --weights none (random weights) or --backbone default (weight-free)"
        )
    return str(path.resolve())


class Backbone:
    """A frozen feature extractor: frames uint8 [B, H, W, 3] RGB -> float32 [B, 49, D].

    Attributes: name, weights (what was used, see `describe_weights`), input_size
    (frames are resized to input_size x input_size; the caller may decode them at that
    size directly), D, grid = (7, 7), device (resolved from "auto", "cpu" or "cuda"),
    threads (torch intra-op threads used during a call; the previous setting is
    restored after it), batch_size (frames per call that suit it).
    """

    grid = GRID

    def __init__(self, name: str, weights: str | None = None, device: str | torch.device = "auto") -> None:
        self.name = name
        self.weights = describe_weights(name, weights)
        self.device = resolve_device(device)
        cores = available_cores()
        if name == "default":
            # Its ops are small and memory-bound: one thread runs them as fast as two
            # and leaves the other cores to the video decoder.
            self.net: nn.Module = DefaultFeatures()
            self.D, self.input_size, self.threads, self.batch_size = DefaultFeatures.D, DEFAULT_INPUT_SIZE, 1, 32
        else:
            arch, _, self.D, _ = _CNNS[name]
            trunk = _CNNTrunk(arch)
            if self.weights == IMAGENET:
                path = fetch_imagenet(name)
                trunk.load(_load_state(path), str(path))
            elif self.weights != RANDOM:
                trunk.load(_load_state(Path(self.weights)), self.weights)
            self.net = trunk
            self.input_size, self.threads = CNN_INPUT_SIZE, cores
            self.batch_size = 64 if self.device.type == "cuda" else 16
            self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
            self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self.net.eval().requires_grad_(False).to(self.device)

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> float [B, 3, S, S] in [0, 1] on the device."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ProclError(f"backbone input must be uint8 [B, H, W, 3], got {frames.dtype} {frames.shape}")
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).float().div_(255)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return x

    def __call__(self, frames: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
        """Region features [B, 49, D] float32 of frames [B, H, W, 3].

        prev: the frame sampled just before frames[0] ([H, W, 3]), or None at the start of
        a video; only the default backbone uses it (motion).
        """
        if len(frames) == 0:
            return np.zeros((0, GRID[0] * GRID[1], self.D), np.float32)
        with threads(self.threads), torch.inference_mode():
            x = self._tensor(frames)  # [B, 3, S, S]
            if self.name == "default":
                first = self._tensor(prev[None]) if prev is not None else x[:1]
                x = torch.cat([first, x])  # [B + 1, 3, S, S]
                # Small slices keep the intermediate maps in cache (several times faster).
                y = torch.cat([self.net(x[i : i + _SLICE + 1]) for i in range(0, len(x) - 1, _SLICE)])
            else:
                y = self.net((x - self._mean) / self._std)  # [B, D, 7, 7]
            return y.flatten(2).transpose(1, 2).float().cpu().numpy()  # [B, 49, D]

    def __repr__(self) -> str:
        return f"Backbone({self.name}, weights={self.weights}, D={self.D}, device={self.device})"


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise ProclError(f"weights {path}: cannot be read as a state_dict ({type(err).__name__}: {err})") from None


def get_backbone(name: str, weights: str | None = None, device: str | torch.device = "auto") -> Backbone:
    """The backbone `name` (one of NAMES) with `weights` (None or "imagenet": ImageNet
    weights for CNNs, downloaded into torch hub's cache when missing; "none": random CNN
    weights; or a state_dict PATH) on `device` ("auto": a GPU when there is one, "cpu",
    "cuda")."""
    return Backbone(name, weights, device)
