r"""Official StyleGAN2-ADA networks (NVlabs/stylegan2-ada-pytorch) as this project's StyleGAN2.

Two inputs are read, neither needing NVlabs' code:

* a **network pickle** (``network-snapshot-*.pkl``): a dict with ``G``, ``D``, ``G_ema``
  (and ``augment_pipe``, ``training_set_kwargs``).  NVlabs pickle their modules with
  ``torch_utils.persistence``, which stores each module's *source code* and rebuilds the class
  by executing it.  :func:`read_network_pickle` never does: a restricted unpickler
  (:class:`_NetworkUnpickler`) resolves only an allow-list of globals (torch's tensor and
  storage rebuilders, ``OrderedDict``, ``set``, numpy scalars, ``dnnlib``'s ``EasyDict`` as a
  plain dict) and turns each persistent object into an inert :class:`PersistentRecord`
  (class name + ``__dict__``); the source code is dropped unread.  Any other global
  (``os.system``, ``builtins.eval``, ...) stops the load with a :class:`~core.errors.UserError`
  before anything is called.  The records give the flat state dict with NVlabs' names and
  the constructors' keyword arguments (:class:`NVlabsNetwork`).
* a **plain state dict** with NVlabs' parameter names (``torch.save(G_ema.state_dict())``),
  read with ``torch.load(weights_only=True)``; the configuration is inferred from the shapes.

The name map into :class:`~lightning_modules.nets.stylegan2.StyleGAN2Generator` /
:class:`~lightning_modules.nets.stylegan2.StyleGAN2Discriminator`:

=====================================  ===========================================  ==========================
NVlabs                                 here                                         value
=====================================  ===========================================  ==========================
``mapping.fc{i}.*``                    ``mapping.layers.{i}.*``                     x lr_multiplier / 0.01
``synthesis.b{R}.*``                   ``synthesis.blocks.{log2(R) - 2}.*``
``....conv0.weight`` (R > 4)           the same                                     flipped in H and W
``....noise_strength``                 ``....noise.strength``
``....noise_const`` [R, R]             ``....noise.noise_const`` [1, 1, R, R]
``b{R}.*`` (D)                         ``blocks.{log2(resolution / R)}.*``
``b4.conv``, ``b4.fc``, ``b4.out``     ``conv``, ``fc``, ``out``
``*.resample_filter``                  (not stored; must be the [1, 3, 3, 1] filter)
=====================================  ===========================================  ==========================

NVlabs' up-sampling synthesis convolutions are transposed convolutions that use the stored
kernel as is (``flip_weight=False`` for ``up > 1`` in ``training/networks.py``), while
:func:`~lightning_modules.nets.stylegan2_ops.conv2d_resample` flips it to make the transposed
convolution the adjoint of its own correlation; hence the flip of every ``conv0`` weight.
With equal weights, buffers and constant noise our G and D reproduce NVlabs' float32 outputs
(docs/nvlabs-checkpoints.md quotes the differences measured against their code).

Supported: unconditional networks (``c_dim = 0``), G ``skip``/``orig``, D ``resnet``/``orig``,
leaky-ReLU, the [1, 3, 3, 1] filter, 3x3 kernels.  ``num_fp16_res`` is ignored (our networks
run in float32, NVlabs' with ``force_fp32=True``); ``conv_clamp`` is kept.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from core.errors import UserError
from lightning_modules.nets.stylegan2 import RESAMPLE_TAPS, StyleGAN2Discriminator, StyleGAN2Generator
from lightning_modules.nets.stylegan2_ops import Conv2dLayer, fir_filter

__all__ = [
    "NVlabsNetwork",
    "PersistentRecord",
    "build_discriminator",
    "build_generator",
    "discriminator_kwargs",
    "discriminator_state_dict_from_nvlabs",
    "discriminator_state_dict_to_nvlabs",
    "generator_kwargs",
    "generator_state_dict_from_nvlabs",
    "generator_state_dict_to_nvlabs",
    "infer_discriminator_kwargs",
    "infer_generator_kwargs",
    "load_nvlabs",
    "read_network_pickle",
    "read_state_dict",
]

#: The lr multiplier of our mapping layers (MappingNetwork's default, which StyleGAN2Generator uses).
OUR_MAPPING_LR = 0.01
#: NVlabs' defaults of the keyword arguments this conversion reads (training/networks.py).
NVLABS_CHANNEL_BASE = 32768
NVLABS_CHANNEL_MAX = 512
#: How a pre-zip torch.save file starts: protocol 2, then its magic number 0x1950A86A20F9469CFC6C (LONG1).
_LEGACY_TORCH_HEAD = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_NOT_A_NETWORK = "not a stylegan2-ada-pytorch network pickle"


# ---------------------------------------------------------------------------------- the unpickler
@dataclass
class PersistentRecord:
    """What NVlabs' ``_reconstruct_persistent_obj(meta)`` would have built, left inert.

    Attributes:
        class_name: the class in NVlabs' module (``Generator``, ``SynthesisLayer``, ...).
        state: the object's ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``,
            ``_init_args``, ``_init_kwargs`` and plain attributes).
        version: ``torch_utils.persistence``'s format version (6 in stylegan2-ada-pytorch).
    """

    class_name: str
    state: dict
    version: Any = None


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (items only)."""

    def __setstate__(self, state: Any) -> None:  # pickle's BUILD of a dict subclass: __dict__ is empty
        if state:
            raise UserError(f"{_NOT_A_NETWORK}: an EasyDict carries unexpected attributes")


def _persistent_record(meta: Any) -> PersistentRecord:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: keeps the state, drops the code."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise UserError(f"{_NOT_A_NETWORK}: a persistent object without the class, source and state it should have")
    return PersistentRecord(str(meta.get("class_name")), dict(meta["state"]), meta.get("version"))


def _load_storage(data: Any) -> Any:
    """Stand-in for ``torch.storage._load_from_bytes``: the storage, read by torch's safe unpickler."""
    if not isinstance(data, (bytes, bytearray)):
        raise UserError(f"{_NOT_A_NETWORK}: a tensor storage that is not bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage's deprecation warning
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _rebuild_parameter(data: Tensor, requires_grad: Any = False, backward_hooks: Any = None, *state: Any) -> Tensor:
    """A parameter as a plain tensor (hooks and requires_grad dropped)."""
    if not isinstance(data, Tensor):
        raise UserError(f"{_NOT_A_NETWORK}: a parameter that holds no tensor")
    return data


def _rebuild_tensor_v2(storage: Any, offset: int, size: Any, stride: Any, *rest: Any) -> Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UserError(f"{_NOT_A_NETWORK}: a tensor whose storage is {type(storage).__name__}")
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())


def _numpy_global(name: str) -> Callable:
    import numpy as np

    if name == "dtype":
        return np.dtype
    core = getattr(np, "_core", None) or np.core
    return core.multiarray.scalar


def _encode(text: str, encoding: str = "latin1") -> bytes:  # protocol-2 pickles spell bytes this way
    if not isinstance(text, str) or encoding != "latin1":
        raise UserError(f"{_NOT_A_NETWORK}: an unexpected string encoding")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): lambda: _persistent_record,
    ("dnnlib.util", "EasyDict"): lambda: _EasyDict,
    ("dnnlib", "EasyDict"): lambda: _EasyDict,
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("__builtin__", "set"): lambda: set,  # protocol < 3 spells builtins this way
    ("__builtin__", "frozenset"): lambda: frozenset,
    ("_codecs", "encode"): lambda: _encode,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): lambda: _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): lambda: _load_storage,
    ("numpy", "dtype"): lambda: _numpy_global("dtype"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
}


class _NetworkUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only :data:`_ALLOWED` globals; anything else is refused unrun."""

    def find_class(self, module: str, name: str) -> Any:
        make = _ALLOWED.get((module, name))
        if make is None:
            raise UserError(f"{_NOT_A_NETWORK}: it asks for {module}.{name} (refused; nothing in the file was run)")
        return make()

    def persistent_load(self, pid: Any) -> Any:
        raise UserError(f"{_NOT_A_NETWORK}: it holds a persistent id ({str(pid)[:40]}); is it a torch.save file?")


def _unpickle(handle: BinaryIO, name: str) -> Any:
    try:
        return _NetworkUnpickler(handle).load()
    except UserError as err:
        raise UserError(f"{name}: {err}") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise UserError(f"{name}: {_NOT_A_NETWORK} (unreadable: {type(err).__name__}: {err})") from err


# ---------------------------------------------------------------------------------- records -> state dicts
def _plain(value: Any) -> Any:
    """EasyDicts, OrderedDicts and tuples as plain dicts and lists (for init kwargs)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, Tensor):  # numpy scalar
        return value.item()
    return value


def _record_state_dict(record: PersistentRecord, prefix: str = "", out: Optional[dict] = None) -> dict[str, Tensor]:
    """``module.state_dict()`` of the module ``record`` stands for, in torch's order."""
    out = {} if out is None else out
    state = record.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or name in skip:
                continue
            if not isinstance(value, Tensor):
                raise UserError(f"{_NOT_A_NETWORK}: {prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise UserError(f"{_NOT_A_NETWORK}: submodule {prefix}{name} is a {type(child).__name__}")
        _record_state_dict(child, f"{prefix}{name}.", out)
    return out


#: NVlabs' positional arguments of the two network classes (training/networks.py), for ``_init_args``.
_POSITIONAL = {
    "Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"),
    "Discriminator": (
        "c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max", "num_fp16_res",
        "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs",
    ),
}  # fmt: skip


@dataclass
class NVlabsNetwork:
    """One network of a stylegan2-ada-pytorch pickle, without its code.

    Attributes:
        class_name: ``Generator`` or ``Discriminator``.
        init_kwargs: the arguments it was built with (positional ones named), plain dicts.
        state_dict: its ``state_dict()``, NVlabs' names.
    """

    class_name: str
    init_kwargs: dict = field(default_factory=dict)
    state_dict: dict = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: PersistentRecord) -> "NVlabsNetwork":
        kwargs = _plain(record.state.get("_init_kwargs") or {})
        args = _plain(record.state.get("_init_args") or [])
        names = _POSITIONAL.get(record.class_name, ())
        if len(args) > len(names):
            raise UserError(f"{_NOT_A_NETWORK}: {record.class_name} with {len(args)} positional arguments")
        kwargs.update(zip(names, args))
        return cls(record.class_name, kwargs, _record_state_dict(record))


def read_network_pickle(source: Union[str, os.PathLike, BinaryIO]) -> dict[str, NVlabsNetwork]:
    """``{'G': ..., 'D': ..., 'G_ema': ...}`` (those present) from a network pickle, running none of its code.

    Raises:
        UserError: the file is not a stylegan2-ada-pytorch network pickle (the message names the
            global it asked for, or what is missing).
    """
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            data = _unpickle(handle, name)
    else:
        data = _unpickle(source, name)
    expected = {"G": "Generator", "D": "Discriminator", "G_ema": "Generator"}
    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentRecord) for k in expected):
        raise UserError(f"{name}: {_NOT_A_NETWORK} (no persistent G, D or G_ema in a dict)")
    out = {}
    for key, class_name in expected.items():
        record = data.get(key)
        if record is None:
            continue
        if not isinstance(record, PersistentRecord) or record.class_name != class_name:
            got = record.class_name if isinstance(record, PersistentRecord) else type(record).__name__
            raise UserError(f"{name}: {_NOT_A_NETWORK} ({key} is a {got}, not a {class_name})")
        if class_name == "Generator":
            synthesis = (record.state.get("_modules") or {}).get("synthesis")
            parts = (synthesis.state.get("_modules") or {}) if isinstance(synthesis, PersistentRecord) else {}
            kinds = sorted({c.class_name for c in parts.values() if isinstance(c, PersistentRecord)})
            if kinds != ["SynthesisBlock"]:  # StyleGAN3's synthesis is SynthesisInput + SynthesisLayers
                raise UserError(
                    f"{name}: {_NOT_A_NETWORK} ({key}.synthesis is made of {', '.join(kinds) or 'nothing'}, "
                    "not SynthesisBlocks; a StyleGAN3 network?)"
                )
        out[key] = NVlabsNetwork.from_record(record)
    return out


# ---------------------------------------------------------------------------------- configurations
def _check_option(key: str, value: Any, allowed: tuple, what: str) -> None:
    if value not in allowed:
        raise UserError(f"NVlabs {what} option {key}={value!r} is not supported here (supported: {allowed})")


def _require(kwargs: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if kwargs.get(k) is None]
    if missing:
        raise UserError(f"{_NOT_A_NETWORK}: its {what} records no {missing[0]} among its init kwargs")


def _check_filter(value: Any, what: str) -> None:
    if value is not None and [float(v) for v in value] != [float(v) for v in RESAMPLE_TAPS]:
        raise UserError(f"NVlabs {what} option resample_filter={value!r} is not supported here (only [1, 3, 3, 1])")


def generator_kwargs(init_kwargs: Mapping[str, Any]) -> tuple[dict, float]:
    """(``StyleGAN2Generator`` keyword arguments, NVlabs' mapping lr multiplier) from ``Generator``'s init kwargs.

    Raises:
        UserError: an option this project's generator lacks (conditioning, ``resnet``
            synthesis, another activation, filter or kernel size), named.
    """
    kw = dict(init_kwargs)
    _require(kw, ("z_dim", "w_dim", "img_resolution", "img_channels"), "Generator")
    m = dict(kw.get("mapping_kwargs") or {})
    s = dict(kw.get("synthesis_kwargs") or {})
    _check_option("c_dim", kw.get("c_dim", 0), (0, None), "Generator")
    _check_option("mapping_kwargs.activation", m.get("activation", "lrelu"), ("lrelu",), "Generator")
    w_dim = int(kw["w_dim"])
    _check_option("mapping_kwargs.layer_features", m.get("layer_features"), (None, w_dim), "Generator")
    _check_option("synthesis_kwargs.architecture", s.get("architecture", "skip"), ("skip", "orig"), "Generator")
    _check_option("synthesis_kwargs.activation", s.get("activation", "lrelu"), ("lrelu",), "Generator")
    _check_option("synthesis_kwargs.kernel_size", s.get("kernel_size", 3), (3,), "Generator")
    _check_filter(s.get("resample_filter"), "Generator")
    ours = dict(
        z_dim=int(kw["z_dim"]),
        w_dim=w_dim,
        resolution=int(kw["img_resolution"]),
        img_channels=int(kw["img_channels"]),
        channel_base=int(s.get("channel_base", NVLABS_CHANNEL_BASE)),
        channel_max=int(s.get("channel_max", NVLABS_CHANNEL_MAX)),
        mapping_layers=int(m.get("num_layers", 8)),
        architecture=s.get("architecture", "skip"),
        noise_injection="eni" if s.get("use_noise", True) else "none",
        conv_clamp=s.get("conv_clamp"),
        w_avg_beta=m.get("w_avg_beta", 0.995),
    )
    return ours, float(m.get("lr_multiplier", 0.01))


def discriminator_kwargs(init_kwargs: Mapping[str, Any]) -> tuple[dict, dict]:
    """(``StyleGAN2Discriminator`` keyword arguments, extras) from ``Discriminator``'s init kwargs.

    The extras are applied after construction by :func:`build_discriminator`: ``conv_clamp``
    (NVlabs clamps D's fromrgb, conv0, conv1 and epilogue conv) and ``mbstd_whole_batch``
    (``mbstd_group_size=None``: one group of the whole minibatch).
    """
    kw = dict(init_kwargs)
    _require(kw, ("img_resolution", "img_channels"), "Discriminator")
    b = dict(kw.get("block_kwargs") or {})
    e = dict(kw.get("epilogue_kwargs") or {})
    _check_option("c_dim", kw.get("c_dim", 0), (0, None), "Discriminator")
    _check_option("architecture", kw.get("architecture", "resnet"), ("resnet", "orig"), "Discriminator")
    for key, value in (("block_kwargs.activation", b.get("activation", "lrelu")),
                       ("epilogue_kwargs.activation", e.get("activation", "lrelu"))):  # fmt: skip
        _check_option(key, value, ("lrelu",), "Discriminator")
    _check_filter(b.get("resample_filter"), "Discriminator")
    group = e.get("mbstd_group_size", 4)
    channels = int(e.get("mbstd_num_channels", 1))
    ours = dict(
        resolution=int(kw["img_resolution"]),
        img_channels=int(kw["img_channels"]),
        channel_base=int(kw.get("channel_base", NVLABS_CHANNEL_BASE)),
        channel_max=int(kw.get("channel_max", NVLABS_CHANNEL_MAX)),
        architecture=kw.get("architecture", "resnet"),
        mbstd_group_size=(1 if group is None else int(group)) if channels > 0 else 0,
        mbstd_num_channels=max(channels, 1),
    )
    return ours, dict(conv_clamp=kw.get("conv_clamp"), mbstd_whole_batch=group is None and channels > 0)


def _channel_base(channels: Mapping[int, int], channel_max: int, what: str) -> int:
    """A channel_base giving ``channels`` {r: min(base // r, channel_max)}: the smallest one that fits."""
    low, high = 1, None
    for r, c in channels.items():
        if c >= channel_max:  # capped: base // r >= channel_max
            low = max(low, channel_max * r)
        else:  # base // r == c
            low, high = max(low, c * r), min(high, (c + 1) * r) if high is not None else (c + 1) * r
    if high is not None and low >= high:
        raise UserError(f"NVlabs {what}: channel counts {dict(sorted(channels.items()))} fit no channel_base")
    return low


def infer_generator_kwargs(state_dict: Mapping[str, Tensor]) -> dict:
    """``StyleGAN2Generator`` keyword arguments that fit a state dict with NVlabs' names (from shapes)."""
    if "mapping.fc0.weight" not in state_dict:
        raise UserError("NVlabs generator state dict: no tensor mapping.fc0.weight")
    blocks = sorted(int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
    if not blocks or blocks[0] != 4:
        raise UserError("NVlabs generator state dict: no synthesis.b4.conv1.weight")
    resolution = blocks[-1]
    channels = {r: int(state_dict[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in blocks}
    channel_max = max(channels.values())
    z_dim = int(state_dict["mapping.fc0.weight"].shape[1])
    mapping_layers = sum(1 for k in state_dict if re.fullmatch(r"mapping\.fc\d+\.weight", k))
    last = f"mapping.fc{mapping_layers - 1}.weight"
    if last not in state_dict:
        raise UserError(f"NVlabs generator state dict: mapping layers are not numbered fc0..fc{mapping_layers - 1}")
    w_dim = int(state_dict[last].shape[0])
    return dict(
        z_dim=z_dim,
        w_dim=w_dim,
        resolution=resolution,
        img_channels=int(state_dict[f"synthesis.b{resolution}.torgb.weight"].shape[0]),
        channel_base=_channel_base(channels, channel_max, "generator"),
        channel_max=channel_max,
        mapping_layers=mapping_layers,
        architecture="skip" if f"synthesis.b{blocks[0]}.torgb.weight" in state_dict and len(blocks) > 1 else "orig",
        noise_injection="eni" if "synthesis.b4.conv1.noise_strength" in state_dict else "none",
        w_avg_beta=0.995 if "mapping.w_avg" in state_dict else None,
    )


def infer_discriminator_kwargs(state_dict: Mapping[str, Tensor], mbstd_group_size: int = 4) -> dict:
    """``StyleGAN2Discriminator`` keyword arguments that fit a state dict with NVlabs' names.

    The minibatch-stddev group size is not stored in the weights: ``mbstd_group_size`` (NVlabs'
    default 4; their ``cifar`` config used 32).
    """
    if "b4.out.weight" not in state_dict or "b4.conv.weight" not in state_dict:
        raise UserError("NVlabs discriminator state dict: no tensor b4.conv.weight / b4.out.weight")
    blocks = sorted(int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"b(\d+)\.conv0\.weight", k)))
    if not blocks:
        raise UserError("NVlabs discriminator state dict: no block b<R>.conv0.weight above 4x4")
    resolution = blocks[-1]
    channels = {r: int(state_dict[f"b{r}.conv0.weight"].shape[0]) for r in blocks}
    c4 = int(state_dict["b4.conv.weight"].shape[0])
    channels[4] = c4
    channel_max = max(channels.values())
    extra = int(state_dict["b4.conv.weight"].shape[1]) - c4
    return dict(
        resolution=resolution,
        img_channels=int(state_dict[f"b{resolution}.fromrgb.weight"].shape[1]),
        channel_base=_channel_base(channels, channel_max, "discriminator"),
        channel_max=channel_max,
        architecture="resnet" if f"b{resolution}.skip.weight" in state_dict else "orig",
        mbstd_group_size=mbstd_group_size if extra > 0 else 0,
        mbstd_num_channels=max(extra, 1),
    )


# ---------------------------------------------------------------------------------- name maps
def _block_index(res: str) -> int:
    return int(math.log2(int(res))) - 2


def generator_state_dict_from_nvlabs(
    state_dict: Mapping[str, Tensor], lr_multiplier: float = 0.01
) -> "OrderedDict[str, tuple[str, Tensor]]":
    """{our name: (NVlabs name, tensor)} for a generator; resampling filters are checked and dropped.

    ``lr_multiplier`` is NVlabs' mapping lr multiplier; ours is 0.01, so the stored mapping
    weights and biases are rescaled by lr_multiplier / 0.01 (the same effective layer).
    """
    out: "OrderedDict[str, tuple[str, Tensor]]" = OrderedDict()
    for name, value in state_dict.items():
        parts = name.split(".")
        if parts[-1] == "resample_filter":
            _check_resample_buffer(name, value)
            continue
        value = value.detach()
        if parts[0] == "mapping" and len(parts) == 3 and (m := re.fullmatch(r"fc(\d+)", parts[1])):
            ours = f"mapping.layers.{m.group(1)}.{parts[2]}"
            if lr_multiplier != OUR_MAPPING_LR:
                value = value * (lr_multiplier / OUR_MAPPING_LR)
        elif parts[0] == "synthesis" and len(parts) >= 3 and (m := re.fullmatch(r"b(\d+)", parts[1])):
            rest = parts[2:]
            if rest[-1] == "noise_strength":
                rest = rest[:-1] + ["noise", "strength"]
            elif rest[-1] == "noise_const":
                rest = rest[:-1] + ["noise", "noise_const"]
                value = value.reshape(1, 1, *value.shape[-2:]) if value.ndim == 2 else value
            elif rest == ["conv0", "weight"] and value.ndim == 4:
                value = value.flip([2, 3])  # NVlabs' transposed conv uses the kernel unflipped
            ours = ".".join(["synthesis", "blocks", str(_block_index(m.group(1)))] + rest)
        else:
            ours = name
        out[ours] = (name, value)
    return out


def generator_state_dict_to_nvlabs(state_dict: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
    """Our generator's state dict under NVlabs' names (the inverse map; mapping lr 0.01)."""
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for name, value in state_dict.items():
        parts = name.split(".")
        value = value.detach()
        if parts[:2] == ["mapping", "layers"]:
            nv = f"mapping.fc{parts[2]}.{parts[3]}"
        elif parts[:2] == ["synthesis", "blocks"]:
            rest = parts[3:]
            if rest[-2:] == ["noise", "strength"]:
                rest = rest[:-2] + ["noise_strength"]
            elif rest[-2:] == ["noise", "noise_const"]:
                rest = rest[:-2] + ["noise_const"]
                value = value.reshape(value.shape[-2:])
            elif rest == ["conv0", "weight"]:
                value = value.flip([2, 3])
            elif rest[-1] in ("A", "b", "alpha"):
                raise UserError(f"{name}: RNI layers have no NVlabs counterpart")
            nv = ".".join(["synthesis", f"b{2 ** (int(parts[2]) + 2)}"] + rest)
        else:
            nv = name
        out[nv] = value
    return out


def discriminator_state_dict_from_nvlabs(
    state_dict: Mapping[str, Tensor], resolution: int
) -> "OrderedDict[str, tuple[str, Tensor]]":
    """{our name: (NVlabs name, tensor)} for a discriminator of ``resolution``; filters checked and dropped."""
    log_res = int(math.log2(resolution))
    out: "OrderedDict[str, tuple[str, Tensor]]" = OrderedDict()
    for name, value in state_dict.items():
        parts = name.split(".")
        if parts[-1] == "resample_filter":
            _check_resample_buffer(name, value)
            continue
        m = re.fullmatch(r"b(\d+)", parts[0])
        if m and m.group(1) == "4" and len(parts) == 3 and parts[1] in ("conv", "fc", "out"):
            ours = ".".join(parts[1:])
        elif m and m.group(1) != "4" and len(parts) >= 2:
            ours = ".".join(["blocks", str(log_res - int(math.log2(int(m.group(1)))))] + parts[1:])
        else:
            ours = name
        out[ours] = (name, value.detach())
    return out


def discriminator_state_dict_to_nvlabs(state_dict: Mapping[str, Tensor], resolution: int) -> "OrderedDict[str, Tensor]":
    """Our discriminator's state dict under NVlabs' names (the inverse map)."""
    log_res = int(math.log2(resolution))
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    for name, value in state_dict.items():
        parts = name.split(".")
        if parts[0] == "blocks":
            nv = ".".join([f"b{2 ** (log_res - int(parts[1]))}"] + parts[2:])
        elif parts[0] in ("conv", "fc", "out"):
            nv = "b4." + name
        else:
            nv = name
        out[nv] = value.detach()
    return out


def _check_resample_buffer(name: str, value: Tensor) -> None:
    ref = fir_filter(RESAMPLE_TAPS)
    if tuple(value.shape) != tuple(ref.shape) or not torch.allclose(value.float(), ref, atol=1e-6):
        raise UserError(f"NVlabs tensor {name}: a resampling filter other than [1, 3, 3, 1] is not supported here")


def _load_mapped(module: nn.Module, mapped: Mapping[str, tuple[str, Tensor]], what: str, optional=()) -> None:
    """Copy ``mapped`` into ``module``; the first unknown, mis-shaped or missing tensor is a UserError."""
    target = module.state_dict()
    for ours, (nv, value) in mapped.items():
        if ours not in target:
            raise UserError(f"NVlabs {what} tensor {nv}: this project's network has no counterpart ({ours})")
        if tuple(value.shape) != tuple(target[ours].shape):
            raise UserError(
                f"NVlabs {what} tensor {nv} has shape {list(value.shape)}; the configuration expects "
                f"{list(target[ours].shape)} ({ours})"
            )
    missing = [k for k in target if k not in mapped and k not in optional]
    if missing:
        raise UserError(f"NVlabs {what}: tensor for {missing[0]} missing ({len(missing)} missing in all)")
    with torch.no_grad():
        for ours, (_, value) in mapped.items():
            target[ours].copy_(value.to(target[ours].dtype))


# ---------------------------------------------------------------------------------- building
def build_generator(
    state_dict: Mapping[str, Tensor],
    init_kwargs: Optional[Mapping[str, Any]] = None,
    **overrides: Any,
) -> StyleGAN2Generator:
    """Our generator holding an NVlabs ``Generator``'s weights (eval mode).

    Args:
        state_dict: the NVlabs state dict (NVlabs' names).
        init_kwargs: NVlabs' ``Generator`` init kwargs (from a pickle); ``None``: inferred from shapes.
        overrides: our constructor's keyword arguments to set (e.g. ``conv_clamp=256``, which a
            plain state dict does not record).
    """
    if init_kwargs is not None:
        kwargs, lr = generator_kwargs(init_kwargs)
    else:
        kwargs, lr = infer_generator_kwargs(state_dict), 0.01
    kwargs.update(overrides)
    generator = StyleGAN2Generator(**kwargs)
    optional = ("mapping.w_avg",) if kwargs.get("w_avg_beta") is None else ()
    _load_mapped(generator, generator_state_dict_from_nvlabs(state_dict, lr), "generator", optional)
    return generator.eval()


def build_discriminator(
    state_dict: Mapping[str, Tensor],
    init_kwargs: Optional[Mapping[str, Any]] = None,
    conv_clamp: Optional[float] = None,
    **overrides: Any,
) -> StyleGAN2Discriminator:
    """Our discriminator holding an NVlabs ``Discriminator``'s weights (eval mode).

    Args:
        state_dict: the NVlabs state dict.
        init_kwargs: NVlabs' ``Discriminator`` init kwargs; ``None``: inferred from shapes.
        conv_clamp: clamp of D's convolutions when ``init_kwargs`` is None (a state dict does not
            record it; NVlabs' configs use 256 with mixed precision, ``None`` otherwise).
        overrides: our constructor's keyword arguments (e.g. ``mbstd_group_size=32``).
    """
    extras = dict(conv_clamp=conv_clamp, mbstd_whole_batch=False)
    if init_kwargs is not None:
        kwargs, extras = discriminator_kwargs(init_kwargs)
    else:
        kwargs = infer_discriminator_kwargs(state_dict)
    kwargs.update(overrides)
    discriminator = StyleGAN2Discriminator(**kwargs)
    if extras["mbstd_whole_batch"] and discriminator.mbstd is not None:
        discriminator.mbstd.group_size = sys.maxsize  # min(group, N) = N: the whole minibatch
    if extras["conv_clamp"] is not None:  # NVlabs: every conv but the resnet skip
        for name, layer in discriminator.named_modules():
            if isinstance(layer, Conv2dLayer) and not name.endswith("skip"):
                layer.conv_clamp = float(extras["conv_clamp"])
    mapped = discriminator_state_dict_from_nvlabs(state_dict, kwargs["resolution"])
    _load_mapped(discriminator, mapped, "discriminator")
    return discriminator.eval()


def read_state_dict(source: Union[str, os.PathLike, Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """A plain state dict with NVlabs' names, from a mapping or a ``torch.save`` file (``weights_only``)."""
    if isinstance(source, Mapping):
        data = source
    else:
        try:
            data = torch.load(source, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise UserError(f"{os.fspath(source)}: not a plain state dict ({str(err).splitlines()[0]})") from err
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise UserError(f"{source if not isinstance(source, Mapping) else 'state dict'}: not a dict of tensors")
    return dict(data)


def load_nvlabs(
    path: Union[str, os.PathLike], conv_clamp: Optional[float] = None, **discriminator_overrides: Any
) -> dict[str, nn.Module]:
    """NVlabs networks as ours: ``{'G', 'D', 'G_ema'}`` from a network pickle, or one network from a state dict.

    A plain state dict (``torch.save(G_ema.state_dict())`` or ``D.state_dict()``) gives
    ``{'G': ...}`` or ``{'D': ...}``; its ``conv_clamp`` and D's minibatch group size are
    not stored in it: pass ``conv_clamp`` and ``mbstd_group_size``.  A pickle records its
    own ``conv_clamp`` (the argument is not used for it); ``discriminator_overrides`` apply
    to both.
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        head = handle.read(len(_LEGACY_TORCH_HEAD))
    if zipfile.is_zipfile(path) or head == _LEGACY_TORCH_HEAD:  # torch.save's zip or legacy format
        sd = read_state_dict(path)
        if "mapping.fc0.weight" in sd:
            return {"G": build_generator(sd, conv_clamp=conv_clamp)}
        return {"D": build_discriminator(sd, conv_clamp=conv_clamp, **discriminator_overrides)}
    nets = read_network_pickle(path)
    out: dict[str, nn.Module] = {}
    for key, net in nets.items():
        if net.class_name == "Generator":
            out[key] = build_generator(net.state_dict, net.init_kwargs)
        else:
            out[key] = build_discriminator(net.state_dict, net.init_kwargs, **discriminator_overrides)
    return out
