"""How a captured tensor becomes vectors: flatten, all positions, mean, last token, a position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idest.utils import check_choice, invalid

#: Reduction kinds understood by :class:`Reduction`.
REDUCTION_KINDS = ("flatten", "all", "mean", "last", "position")



@dataclass(frozen=True)
class Reduction:
    """How one captured tensor becomes vectors, one or more per sample.

    A captured tensor is read as ``(batch, positions, channels)``: a sequence
    site ``(B, T, D)`` as it is (``channel_axis=-1``), a convolutional map
    ``(B, C, H, W)`` with its channels moved last (``channel_axis=1``, the
    default for tensors of 4 or more dimensions), so its positions are the
    H·W pixels. A 2-D tensor ``(B, D)`` is already one vector per sample and
    is returned unchanged by every kind. When the batch carries an
    ``attention_mask`` of the same length as the positions, padding is never
    selected.

    Parameters
    ----------
    kind : {"flatten", "all", "mean", "last", "position"}, default="last"
        ``"flatten"``: everything after the batch axis, in memory order
        (C·H·W for a conv map; the mask is ignored). ``"all"``: every
        (non-padding) position's channel vector, ``B·T`` rows. ``"mean"``:
        the mean over (non-padding) positions. ``"last"``: the last
        non-padding position (the paper's last token, whether the batch is
        padded on the left or the right). ``"position"``: a fixed position
        counted from each sequence's first non-padding token (negative values
        count back from its last, -1 being the last token).
    position : int, optional
        The position for ``kind="position"`` (required there, refused elsewhere).
    skip_first : bool, default=False
        Leave out each sequence's first non-padding position in ``"all"`` and
        ``"mean"`` (under causal attention position 0 gives the same vector in
        every sequence: exact duplicates).
    channel_axis : int, optional
        Axis of the channels; default -1 for 3-D tensors, 1 for 4-D and more.

    Examples
    --------
    >>> Reduction("position", position=5)
    Reduction(kind='position', position=5, skip_first=False, channel_axis=None)
    >>> Reduction.parse("position:-2").position
    -2
    """

    kind: str = "last"
    position: int | None = None
    skip_first: bool = False
    channel_axis: int | None = None

    def __post_init__(self) -> None:
        check_choice(self.kind, "kind", "Reduction", REDUCTION_KINDS)
        if (self.kind == "position") != (self.position is not None):
            raise invalid("Reduction", "position", "an int exactly when kind='position' (it "
                          "needs position=<int>)",
                          f"kind={self.kind!r} with position={self.position!r}")
        if self.skip_first and self.kind not in ("all", "mean"):
            raise invalid("Reduction", "skip_first", "False unless kind is 'all' or 'mean'",
                          f"kind={self.kind!r}", "Drop skip_first or change the kind.")

    @classmethod
    def parse(cls, spec: str | Reduction) -> Reduction:
        """A Reduction from its short text form: ``"last"``, ``"mean"``,
        ``"all"``, ``"flatten"``, ``"position:3"``; a Reduction is returned as is.

        Examples
        --------
        >>> Reduction.parse("mean").kind
        'mean'
        """
        if isinstance(spec, Reduction):
            return spec
        if not isinstance(spec, str):
            raise invalid("Reduction.parse", "spec",
                          "a Reduction or a string like 'last' or 'position:3'",
                          type(spec).__name__)
        kind, _, arg = spec.partition(":")
        if kind != "position" or not arg:
            if arg:
                raise invalid("Reduction.parse", "spec", "'position:<int>' (only 'position' "
                              "takes an argument)", repr(spec))
            return cls(kind)
        try:
            return cls("position", position=int(arg))
        except ValueError:
            raise invalid("Reduction.parse", "spec", "'position:<int>' such as 'position:3'",
                          repr(spec)) from None

    def apply(self, tensor: Any, mask: Any | None = None) -> Any:
        """Reduce a captured tensor of shape (B, ...) to vectors (rows, width).

        ``mask`` is a (B, T) 0/1 attention mask; it applies when T equals the
        number of positions of the tensor.

        Examples
        --------
        >>> import torch
        >>> x = torch.arange(24.).reshape(2, 3, 4)
        >>> mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
        >>> Reduction("last").apply(x, mask)[:, 0].tolist()   # positions 1 and 2
        [4.0, 20.0]
        """
        import torch

        B = tensor.shape[0]
        if self.kind == "flatten" or tensor.ndim == 2:
            return tensor.reshape(B, -1)
        axis = self.channel_axis
        if axis is None:
            axis = -1 if tensor.ndim == 3 else 1
        seq = tensor.movedim(axis, -1).reshape(B, -1, tensor.shape[axis])  # (B, P, C)
        P = seq.shape[1]
        if mask is None or mask.shape[-1] != P:
            mask = torch.ones((B, P), dtype=torch.bool, device=seq.device)
        else:
            mask = mask.to(device=seq.device, dtype=torch.bool)
        rows = torch.arange(B, device=seq.device)
        first = mask.int().argmax(dim=1)
        last = P - 1 - mask.flip(1).int().argmax(dim=1)
        if self.kind == "last":
            return seq[rows, last]
        if self.kind == "position":
            where = first + self.position if self.position >= 0 else last + 1 + self.position
            bad = (where < first) | (where > last)
            if bool(bad.any()):
                row = int(bad.int().argmax())
                raise ValueError(
                    f"position {self.position} lies outside sequence {row} of the batch, "
                    f"which has {int(mask[row].sum())} non-padding positions; use longer "
                    "sequences or a smaller position.")
            return seq[rows, where]
        if self.skip_first:
            mask = mask.clone()
            mask[rows, first] = False
        if self.kind == "all":
            return seq[mask]
        weights = mask.to(seq.dtype).unsqueeze(-1)
        return (seq * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
