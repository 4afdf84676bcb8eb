"""Decoder weights saved by cc2dkit 0.1 (checkpoint format 1) renamed for the current decoder.

Format 1 named a conv-BN pair ``X.0`` / ``X.1`` (an ``nn.Sequential``) and kept the C-Adapter's
landmark-specific blocks in their own lists (``lateral_adapters.i``, ``stage_adapters.i.j``). The
current decoder names them ``X.conv`` / ``X.bn`` and puts an adapter beside its shared block
(``lateral.i.shared`` / ``lateral.i.adapter``). Inside a block both list the same tensors in the
same order, so each old block's tensors are matched, in order and shape, to the new block's.
"""
from __future__ import annotations

import re

import torch

from .decoder import Decoder

_BLOCK = re.compile(r"^(lateral_adapters|lateral|heads)\.(\d+)\.|^(stage_adapters|stages)\.(\d+)\.(\d+)\.")


def _new_prefix(old_key: str, adapters: bool) -> str:
    m = _BLOCK.match(old_key)
    if m is None:
        raise KeyError(old_key)
    if m.group(1):
        kind, idx = m.group(1), m.group(2)
        if kind == "heads":
            return f"heads.{idx}"
        if kind == "lateral_adapters":
            return f"lateral.{idx}.adapter"
        return f"lateral.{idx}" + (".shared" if adapters else "")
    kind, i, j = m.group(3), m.group(4), m.group(5)
    return f"stages.{i}.{j}" + (".adapter" if kind == "stage_adapters" else ".shared" if adapters else "")


def upgrade_decoder_state(old: dict[str, torch.Tensor], decoder: Decoder, where: str) -> dict[str, torch.Tensor]:
    """Format-1 decoder weights as ``decoder``'s state dict; ValueError naming ``where`` if they do not fit."""
    new = decoder.state_dict()
    adapters = any(k.startswith(("lateral_adapters.", "stage_adapters.")) for k in old)
    groups: dict[str, list[str]] = {}
    try:
        for key in old:
            groups.setdefault(_new_prefix(key, adapters), []).append(key)
    except KeyError as e:
        raise ValueError(f"{where}: format-1 weights with an unknown tensor {e.args[0]!r}") from None
    out = {}
    for prefix, old_keys in groups.items():
        new_keys = [k for k in new if k.startswith(prefix + ".")]
        shapes_old = [tuple(old[k].shape) for k in old_keys]
        shapes_new = [tuple(new[k].shape) for k in new_keys]
        if shapes_old != shapes_new:
            raise ValueError(f"{where}: the format-1 weights of block {prefix!r} do not fit this decoder "
                             f"({len(old_keys)} tensors vs {len(new_keys)}); was it saved with another config?")
        out.update({n: old[o] for o, n in zip(old_keys, new_keys)})
    missing = set(new) - set(out)
    if missing:
        raise ValueError(f"{where}: format-1 weights lack {sorted(missing)[:4]} of this decoder")
    return out
