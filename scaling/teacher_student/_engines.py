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
student (the reference, gradients by autograd). :class:`BatchedEngine` stacks the students
into groups and runs each group's forward pass and backward pass as a few batched matrix
products written out by hand (no autograd graph), with every parameter in one flat buffer
updated by one Adam call, so that a step pays the framework's per-operation overhead once
per group, not per student, and no more memory passes than the arithmetic needs.

Exactness of the batched engine
-------------------------------
* **Gradients.** The loss minimised is the sum of the students' mean losses. A student's
  parameters enter only its own term, so the gradient of the sum with respect to them is
  the gradient of its own loss. The engine computes it by backpropagation in closed form:
  d(loss)/d(output) (:func:`_loss_gradient`: softmax(o)·Σt − t over the batch for the KL
  loss, the derivative autograd takes of log-softmax), then per layer dW = hᵀ·g and
  g ← (g·Wᵀ) ⊙ [h > 0] (ReLU's derivative, as autograd's ``threshold_backward``). The
  bias is the last row of an augmented weight matrix and the activations carry a column
  of ones, so h·W adds it and hᵀ·g gives its gradient (the sum over the batch). The same
  numbers as autograd's up to the order of float64 sums (tests: rtol 1e-10 after 30
  steps).
* **Adam.** Adam (Kingma & Ba 2015, algorithm 1) is elementwise: each parameter entry's
  moments and update depend only on that entry's gradients, the learning rate, the betas,
  eps and the step count, all shared by the students. One optimizer over the flat buffer
  therefore performs the same arithmetic as one optimizer per student (torch's fused Adam,
  one pass over the buffer, orders that arithmetic slightly differently from the
  reference's loop: float round-off).
* **Neighbours.** A student's numbers do not depend on the other students of its stack,
  bit for bit: each product is one matrix per student, every student's block of a stacked
  tensor starts at the same alignment (the SIMD kernels' results depend on it), and the
  vectorised functions of the loss gradient run over each student's block on its own
  (:func:`_stacked`, :func:`_loss_gradient`).
* **Padding.** A group may hold students of different widths padded to the widest. The
  padded entries start at 0; a padded hidden unit then outputs ReLU(0) = 0 for every
  input, contributes nothing to any output, and gets zero gradient; the gradient is also
  multiplied by an exact 0/1 mask, so the padding gets exactly zero Adam updates and stays
  0. A padded student computes the same function, loss and gradients as the same student
  alone; only the summation order of the matrix products differs (float round-off).

torch is imported inside the constructors, so importing this module needs no torch.
"""

from __future__ import annotations

import math
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


def _augmented(x, dtype, torch):
    """``x`` (rows, features) with a column of ones appended, in ``dtype``: the input of a
    bias-augmented layer."""
    out = torch.ones(x.shape[0], x.shape[1] + 1, dtype=dtype)
    out[:, :-1] = torch.from_numpy(np.asarray(x))
    return out


#: Every student's block of a stacked tensor starts at a multiple of this many entries
#: (128 bytes in float64) and is followed by a gap: the SIMD kernels of the matrix
#: products and of the elementwise functions then meet a student's entries at the same
#: alignment, on their own, whatever other students share the stack.
_ALIGN = 16


def _block(entries: int) -> int:
    """Entries of one student's block holding ``entries`` numbers, gap included."""
    return -(-(entries + 1) // _ALIGN) * _ALIGN


def _stacked(flat, n_students: int, *shape: int):
    """The (n_students, *shape) view of ``flat`` (``n_students * _block(prod(shape))``
    entries) with one block per student."""
    entries = math.prod(shape)
    return flat.view(n_students, -1)[:, :entries].view(n_students, *shape)


def _new_stack(torch, n_students: int, *shape: int, dtype):
    """A new uninitialised stacked tensor (:func:`_stacked`)."""
    flat = torch.empty(n_students * _block(math.prod(shape)), dtype=dtype)
    return _stacked(flat, n_students, *shape)


class _Group:
    """Students of one depth stacked along a leading axis, padded to a common width.

    Layer ``l`` is one tensor of shape (students, fan_in + 1, fan_out), a view into the
    engine's flat parameter buffer: rows ``:fan_in`` hold the weights (input-major, so a
    layer computes ``h @ W``), the last row the bias. Activations carry a last column of
    ones, so one batched product computes ``h @ W + b`` and the product that gives the
    weights' gradient gives the bias's (the sum over the batch) with it.
    """

    def __init__(self, models, widths: list[int]) -> None:
        self.widths = widths
        self.padded = max(widths)
        self.models = models  # until the engine copies them into its buffer (bind)
        n_layers = len(models[0]) // 2 + 1
        first = models[0][0].in_features
        last = models[0][-1].out_features
        sizes = [first] + [self.padded] * (n_layers - 1) + [last]
        #: (fan_in + 1, fan_out) of every layer
        self.shapes = [(a + 1, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        self.size = sum(len(models) * _block(a * b) for a, b in self.shapes)
        self.layers: list = []  # parameter views, set by bind
        self.grads: list = []  # gradient views, set by bind
        self._work: _Workspace | None = None

    def bind(self, params, grads, mask) -> None:
        """Take this group's views of the flat buffers and copy the students' initial
        weights into them (``mask``: 1 on real entries, 0 on padding; None if unpadded)."""
        n_students = len(self.models)
        offset = 0
        for layer, (rows, cols) in enumerate(self.shapes):
            n = n_students * _block(rows * cols)
            view = _stacked(params[offset:offset + n], n_students, rows, cols)
            self.layers.append(view)
            self.grads.append(_stacked(grads[offset:offset + n], n_students, rows, cols))
            for r, model in enumerate(self.models):
                lin = model[2 * layer]
                view[r, : lin.in_features, : lin.out_features] = lin.weight.detach().T
                view[r, -1, : lin.out_features] = lin.bias.detach()
                if mask is not None:
                    block = _stacked(mask[offset:offset + n], n_students, rows, cols)[r]
                    block[: lin.in_features, : lin.out_features] = 1
                    block[-1, : lin.out_features] = 1
            offset += n
        del self.models

    @property
    def weights(self) -> list:
        """Every layer's weights, (students, fan_in, fan_out) views."""
        return [layer[:, :-1] for layer in self.layers]

    @property
    def biases(self) -> list:
        """Every layer's biases, (students, 1, fan_out) views."""
        return [layer[:, -1:] for layer in self.layers]

    def workspace(self, rows: int, cache: bool = False) -> _Workspace:
        """The stacks a pass over ``rows`` inputs writes; with ``cache``, those of the last
        training batch size are kept (the phases come in order), so that a step allocates
        (and the system zero-fills) no new memory."""
        if cache and self._work is not None and self._work.rows == rows:
            return self._work
        work = _Workspace(self.shapes, len(self.widths), rows, self.layers[0].dtype)
        if cache:
            self._work = work
        return work

    def forward(self, x_aug, work: _Workspace, hidden: bool = False):
        """Activations of every layer: [input, hidden..., output (or nothing if
        ``hidden``)], each (students, rows, features [+1 ones column for all but the
        output]). ``x_aug``: the inputs with their ones column (:func:`_augmented`)."""
        import torch

        acts = [x_aug.expand(len(self.widths), *x_aug.shape)]  # every student reads it
        for layer, h in zip(self.layers[:-1], work.hidden, strict=True):
            torch.bmm(acts[-1], layer, out=h[..., :-1])  # h @ W + b, in place
            h[..., :-1].clamp_(min=0)  # ReLU (the ones column stays 1)
            acts.append(h)
        if not hidden:
            acts.append(torch.bmm(acts[-1], self.layers[-1], out=work.output))
        return acts

    def backward(self, acts, work: _Workspace) -> None:
        """Write d(sum of the students' losses)/d(every parameter) into :attr:`grads`,
        from ``work.loss`` = d/d(output) (backpropagation, Rumelhart et al. 1986)."""
        import torch

        g = work.loss
        for layer in range(len(self.layers) - 1, -1, -1):
            torch.bmm(acts[layer].transpose(1, 2), g, out=self.grads[layer])
            if layer:  # through the weights, then through the ReLU (zero where h = 0)
                g = torch.bmm(g, self.layers[layer][:, :-1].transpose(1, 2),
                              out=work.backward[layer - 1])
                torch.ops.aten.threshold_backward.grad_input(g, acts[layer][..., :-1], 0,
                                                             grad_input=g)


class _Workspace:
    """The stacks (:func:`_stacked`) of one pass of a group over ``rows`` inputs: the hidden
    activations (last column ones), the gradients flowing back into them, the output and
    d(loss)/d(output)."""

    def __init__(self, shapes, n_students: int, rows: int, dtype) -> None:
        import torch

        self.rows = rows
        self.hidden = [_new_stack(torch, n_students, rows, w, dtype=dtype)
                       for w, _ in shapes[1:]]
        for h in self.hidden:
            h[..., -1] = 1
        self.backward = [_new_stack(torch, n_students, rows, w - 1, dtype=dtype)
                         for w, _ in shapes[1:]]
        self.output = _new_stack(torch, n_students, rows, shapes[-1][1], dtype=dtype)
        self.loss = _new_stack(torch, n_students, rows, shapes[-1][1], dtype=dtype)


def _loss_gradient(output, target, target_sum, loss_name: str, power: float, out):
    """d(mean training loss)/d(output) of every student (:func:`train_loss`), in closed
    form, written into ``out`` (a stack: elementwise kernels run over each student's block
    on its own, so a vectorised function, whose SIMD body and scalar tail round
    differently, treats a student's entries the same whatever students share its stack).

    KL (cross-entropy on soft labels): softmax(o) * sum(t) - t over the batch size, the
    gradient of log-softmax, the two-logit softmax computed as sigmoids of the logits'
    differences; |o - t|^p: p |o - t|^(p - 1) sign(o - t) over the batch size.
    """
    import torch

    rows = output.shape[1]
    if loss_name == "kl":
        torch.sub(output[..., 0], output[..., 1], out=out[..., 0])
        torch.sub(output[..., 1], output[..., 0], out=out[..., 1])
        return out.sigmoid_().mul_(target_sum).sub_(target).div_(rows)
    torch.sub(output, target, out=out)
    sign = out.sign()
    return out.abs_().pow_(power - 1).mul_(sign).mul_(power / rows)


class BatchedEngine:
    """All students as a few stacked groups: one forward, backward and Adam call per group.

    ``padding="none"`` makes one group per (width, depth) (no padding: every run of a
    width in one stack); ``"all"`` one group per depth, every width padded to the widest
    (see the module notes). Gradients are computed by explicit backpropagation into one
    flat buffer, and one Adam updates the flat parameter buffer.
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
                                      [specs[i].width for i in members]))
        total = sum(g.size for g in self.groups)
        self.parameters = torch.zeros(total, dtype=self.dtype)
        self.parameters.grad = torch.zeros(total, dtype=self.dtype)
        padded = any(len(set(g.widths)) > 1 for g in self.groups)
        #: 1 on real entries, 0 on padding (whose gradient it zeroes: they stay exactly 0)
        self.mask = torch.zeros(total, dtype=self.dtype) if padded else None
        offset = 0
        with torch.no_grad():
            for g in self.groups:
                g.bind(self.parameters[offset:offset + g.size],
                       self.parameters.grad[offset:offset + g.size],
                       None if self.mask is None else self.mask[offset:offset + g.size])
                offset += g.size
        try:  # one pass over the buffer (torch >= 2.4 on CPU); else the elementwise loop
            self.optimizer = torch.optim.Adam([self.parameters], fused=True)
        except RuntimeError:
            self.optimizer = torch.optim.Adam([self.parameters])
        self._inputs = torch.empty(0)  # the last batch with its ones column

    def step(self, x: np.ndarray, target: np.ndarray, lr: float) -> None:
        import torch

        with torch.no_grad():
            if self._inputs.shape[0] != len(x):
                self._inputs = _augmented(x, self.dtype, torch)
            else:
                self._inputs[:, :-1] = torch.from_numpy(x)
            tt = torch.from_numpy(target).to(self.dtype)
            t_sum = tt.sum(dim=-1, keepdim=True) if self.loss_name == "kl" else None
            for g in self.groups:
                work = g.workspace(len(x), cache=True)
                acts = g.forward(self._inputs, work)
                _loss_gradient(acts[-1], tt, t_sum, self.loss_name, self.power, work.loss)
                g.backward(acts, work)
            if self.mask is not None:
                self.parameters.grad.mul_(self.mask)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()

    def state_dict(self) -> dict:
        return {"parameters": self.parameters.detach(), "adam": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        import torch

        if state["parameters"].shape != self.parameters.shape:
            raise ValueError(f"BatchedEngine: the state holds "
                             f"{state['parameters'].numel()} parameters, this engine "
                             f"{self.parameters.numel()}.")
        with torch.no_grad():
            self.parameters.copy_(state["parameters"])
        self.optimizer.load_state_dict(state["adam"])

    def _apply(self, x: np.ndarray, hidden: bool) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            chunks = [x[a:a + EVAL_ROWS] for a in range(0, len(x), EVAL_ROWS)]
            per_group = [torch.cat([g.forward(_augmented(c, self.dtype, torch),
                                              g.workspace(len(c)), hidden=hidden)[-1]
                                    for c in chunks], dim=1).numpy()
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
