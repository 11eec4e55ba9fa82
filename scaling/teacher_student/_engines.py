"""Two ways to take one Adam step for many students on one batch: one by one, or all at once.

Both engines hold students built by :func:`make_student` (so their initial weights are
the same numbers) and expose the same three operations:

* ``step(x, target, lr)``: one Adam step of every student on the batch ``x``;
* ``outputs(x)``: every student's output on ``x`` (float64 arrays);
* ``hidden(x)``: every student's final-hidden-layer activations on ``x`` (float32 arrays).

and ``state_dict()`` / ``load_state_dict(state)``: every parameter and the Adam state, for
a checkpoint (:mod:`scaling.teacher_student._checkpoint`); loading copies the numbers into
the engine's own tensors, so the optimizer keeps training the same objects.

:class:`LockstepEngine` keeps one ``torch.nn.Sequential`` and one ``torch.optim.Adam`` per
student (the reference). :class:`BatchedEngine` stacks the students into groups and runs
each group's forward pass, backward pass and Adam update as single tensor operations, so
that a step pays the framework's per-operation overhead once per group, not per student.

Exactness of the batched engine
-------------------------------
* **Gradients.** The loss minimised is the sum of the students' mean losses. A student's
  parameters enter only its own term, so the gradient of the sum with respect to them is
  the gradient of its own loss (the derivative of the sum with respect to each term is 1).
* **Adam.** Adam (Kingma & Ba 2015, algorithm 1) is elementwise: each parameter entry's
  moments and update depend only on that entry's gradients, the learning rate, the betas,
  eps and the step count, all shared by the students. Stacking the students' tensors
  therefore performs the same arithmetic as one optimizer per student.
* **Padding.** A group may hold students of different widths padded to the widest. The
  padded entries of every weight and bias are multiplied by an exact 0/1 mask in the
  forward pass, so padded hidden units output ReLU(0) = 0 for every input, contribute
  nothing to any output, and receive exactly zero gradient (the mask's derivative) and
  hence exactly zero Adam updates. A padded student computes the same function, loss and
  gradients as the same student alone; only the summation order of the matrix products
  differs (float round-off).

torch is imported inside the constructors, so importing this module needs no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scaling.teacher_student._student import make_student, student_seed

#: How a batched engine groups students: one group per (width, depth), or one per depth
#: with every width padded to the widest.
PADDINGS = ("none", "all")
#: Rows per forward pass when evaluating (bounds the memory of the activations).
EVAL_ROWS = 4096


@dataclass(frozen=True)
class StudentSpec:
    """One student: its width, depth and run (its initialisation is :func:`student_seed`)."""

    width: int
    depth: int
    run: int


def train_loss(output, target, loss_name: str, power: float):
    """Mean training loss over the batch (second-to-last axis); one value per student.

    For ``"kl"`` the cross-entropy on soft labels (its gradient is the KL divergence's).
    """
    import torch

    if loss_name == "kl":
        return -(target * torch.log_softmax(output, dim=-1)).sum(dim=-1).mean(dim=-1)
    return (output - target).abs().pow(power).sum(dim=-1).mean(dim=-1)


def _models(specs: Sequence[StudentSpec], n_inputs: int, n_outputs: int, bias_std: float,
            dtype):
    return [make_student(n_inputs, s.width, s.depth, n_outputs, bias_std=bias_std,
                         random_state=student_seed(s.run, s.width, s.depth)).to(dtype)
            for s in specs]


class LockstepEngine:
    """One module and one Adam optimizer per student: the reference path."""

    def __init__(self, specs: Sequence[StudentSpec], n_inputs: int, n_outputs: int, *,
                 loss_name: str, power: float, bias_std: float, dtype: str) -> None:
        import torch

        self.dtype = getattr(torch, dtype)
        self.loss_name, self.power = loss_name, power
        self.models = _models(specs, n_inputs, n_outputs, bias_std, self.dtype)
        self.optimizers = [torch.optim.Adam(m.parameters()) for m in self.models]

    def step(self, x: np.ndarray, target: np.ndarray, lr: float) -> None:
        import torch

        xt = torch.from_numpy(x).to(self.dtype)
        tt = torch.from_numpy(target).to(self.dtype)
        for model, opt in zip(self.models, self.optimizers, strict=True):
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            train_loss(model(xt), tt, self.loss_name, self.power).backward()
            opt.step()

    def state_dict(self) -> dict:
        return {"models": [m.state_dict() for m in self.models],
                "adam": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for model, opt, saved, adam in zip(self.models, self.optimizers, state["models"],
                                           state["adam"], strict=True):
            model.load_state_dict(saved)
            opt.load_state_dict(adam)

    def _apply(self, x: np.ndarray, hidden: bool) -> list[np.ndarray]:
        import torch

        out = []
        with torch.no_grad():
            for model in self.models:
                net = model[:-1] if hidden else model
                parts = [net(torch.from_numpy(x[a:a + EVAL_ROWS]).to(self.dtype))
                         for a in range(0, len(x), EVAL_ROWS)]
                out.append(torch.cat(parts).numpy())
        return out

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return [o.astype(np.float64) for o in self._apply(x, hidden=False)]

    def hidden(self, x: np.ndarray) -> list[np.ndarray]:
        return [h.astype(np.float32) for h in self._apply(x, hidden=True)]


class _Group:
    """Students of one depth stacked along a leading axis, padded to a common width."""

    def __init__(self, models, widths: list[int], torch, dtype) -> None:
        self.widths = widths
        self.padded = max(widths)
        linears = [[m[i] for i in range(0, len(m), 2)] for m in models]
        self.weights, self.biases, self.weight_masks, self.bias_masks = [], [], [], []
        n_layers = len(linears[0])
        needs_mask = len(set(widths)) > 1
        for layer in range(n_layers):
            fan_in = linears[0][layer].in_features if layer == 0 else self.padded
            fan_out = linears[0][layer].out_features if layer == n_layers - 1 else self.padded
            W = torch.zeros(len(models), fan_in, fan_out, dtype=dtype)
            b = torch.zeros(len(models), 1, fan_out, dtype=dtype)
            for r, student in enumerate(linears):
                lin = student[layer]
                W[r, : lin.in_features, : lin.out_features] = lin.weight.detach().T
                b[r, 0, : lin.out_features] = lin.bias.detach()
            if needs_mask:
                self.weight_masks.append(torch.zeros_like(W))
                self.bias_masks.append(torch.zeros_like(b))
                for r, student in enumerate(linears):
                    lin = student[layer]
                    self.weight_masks[-1][r, : lin.in_features, : lin.out_features] = 1
                    self.bias_masks[-1][r, 0, : lin.out_features] = 1
            self.weights.append(W.requires_grad_())
            self.biases.append(b.requires_grad_())

    def parameters(self) -> list:
        return [*self.weights, *self.biases]

    def forward(self, x, hidden: bool = False):
        """Outputs (or final-hidden activations) of shape (students, rows, features)."""
        import torch

        h = x.expand(len(self.widths), *x.shape)  # every student reads the same batch
        n_layers = len(self.weights)
        for layer in range(n_layers - 1 if hidden else n_layers):
            W, b = self.weights[layer], self.biases[layer]
            if self.weight_masks:
                W, b = W * self.weight_masks[layer], b * self.bias_masks[layer]
            h = torch.baddbmm(b, h, W)  # b + h @ W, one pass
            if layer < n_layers - 1:
                h = h.relu_()
        return h


class BatchedEngine:
    """All students as a few stacked groups: one forward, backward and Adam call per group.

    ``padding="none"`` makes one group per (width, depth) (no padding: every run of a
    width in one stack); ``"all"`` one group per depth, every width padded to the widest
    and masked exactly (see the module notes).
    """

    def __init__(self, specs: Sequence[StudentSpec], n_inputs: int, n_outputs: int, *,
                 loss_name: str, power: float, bias_std: float, dtype: str,
                 padding: str = "none") -> None:
        import torch

        self.dtype = getattr(torch, dtype)
        self.loss_name, self.power = loss_name, power
        models = _models(specs, n_inputs, n_outputs, bias_std, self.dtype)
        keys = [(s.depth,) if padding == "all" else (s.depth, s.width) for s in specs]
        self.groups: list[_Group] = []
        #: (group index, row in the group) of every student, in the order of ``specs``
        self.where: list[tuple[int, int]] = [(0, 0)] * len(specs)
        for key in dict.fromkeys(keys):
            members = [i for i, k in enumerate(keys) if k == key]
            for row, i in enumerate(members):
                self.where[i] = (len(self.groups), row)
            self.groups.append(_Group([models[i] for i in members],
                                      [specs[i].width for i in members], torch, self.dtype))
        self.optimizer = torch.optim.Adam(self._parameters())

    def step(self, x: np.ndarray, target: np.ndarray, lr: float) -> None:
        import torch

        xt = torch.from_numpy(x).to(self.dtype)
        tt = torch.from_numpy(target).to(self.dtype)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = sum(train_loss(g.forward(xt), tt, self.loss_name, self.power).sum()
                    for g in self.groups)
        total.backward()
        self.optimizer.step()

    def _parameters(self) -> list:
        return [p for g in self.groups for p in g.parameters()]

    def state_dict(self) -> dict:
        return {"parameters": [p.detach() for p in self._parameters()],
                "adam": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        import torch

        params = self._parameters()
        shapes = [tuple(p.shape) for p in params]
        saved_shapes = [tuple(p.shape) for p in state["parameters"]]
        if shapes != saved_shapes:
            raise ValueError(f"BatchedEngine: the state's tensors have shapes {saved_shapes}, "
                             f"this engine's {shapes}.")
        with torch.no_grad():
            for p, saved in zip(params, state["parameters"], strict=True):
                p.copy_(saved)
        self.optimizer.load_state_dict(state["adam"])

    def _apply(self, x: np.ndarray, hidden: bool) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            per_group = [torch.cat([g.forward(torch.from_numpy(x[a:a + EVAL_ROWS])
                                              .to(self.dtype), hidden=hidden)
                                    for a in range(0, len(x), EVAL_ROWS)], dim=1).numpy()
                         for g in self.groups]
        out = []
        for g, row in self.where:
            values = per_group[g][row]
            out.append(values[:, : self.groups[g].widths[row]] if hidden else values)
        return out

    def outputs(self, x: np.ndarray) -> list[np.ndarray]:
        return [o.astype(np.float64) for o in self._apply(x, hidden=False)]

    def hidden(self, x: np.ndarray) -> list[np.ndarray]:
        return [h.astype(np.float32) for h in self._apply(x, hidden=True)]
