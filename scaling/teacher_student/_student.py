"""Fully connected ReLU students [n_in, n, ..., n, n_out] (Sharma & Kaplan A.2.1).

torch is imported inside the functions that need it, so ``import scaling`` stays torch-free.
"""

from __future__ import annotations

import math

import numpy as np

from idest.utils import check_int

#: Authors' student bias initialisation: N(0, 0.5²).
BIAS_STD = 0.5


def student_widths(n_widths: int, *, first: int = 0) -> list[int]:
    """Widths n = ⌊22 · 1.3^i⌋ for i = first, ..., first + n_widths - 1.

    Examples
    --------
    >>> from scaling.teacher_student import student_widths
    >>> student_widths(6)
    [22, 28, 37, 48, 62, 81]
    """
    check_int(n_widths, "n_widths", "student_widths", 1)
    return [math.floor(22 * 1.3**i) for i in range(first, first + n_widths)]


def parameter_count(n_inputs: int, width: int, depth: int, n_outputs: int) -> int:
    """Weights plus biases of a student with ``depth`` hidden layers of ``width``.

    Examples
    --------
    >>> from scaling.teacher_student import parameter_count
    >>> parameter_count(20, 22, 2, 2)  # [20, 22, 22, 2]
    1014
    """
    sizes = [n_inputs] + [width] * depth + [n_outputs]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def make_student(
    n_inputs: int, width: int, depth: int, n_outputs: int, *, bias_std: float = BIAS_STD,
    random_state: int = 0,
):
    """A seeded ``torch.nn.Sequential`` student with ``depth`` (2, 3 or 4) ReLU hidden layers.

    Weights are N(0, 1/fan_in) and biases N(0, ``bias_std``²) (the authors' code uses 0.5).
    ``model[:-1]`` maps inputs to the final hidden layer, whose activations give the ID.

    Examples
    --------
    >>> from scaling.teacher_student import make_student
    >>> model = make_student(20, 22, 2, 2, random_state=0)
    >>> sum(p.numel() for p in model.parameters())
    1014
    """
    import torch

    caller = "make_student"
    for name, value, low in (("n_inputs", n_inputs, 1), ("width", width, 1),
                             ("depth", depth, 1), ("n_outputs", n_outputs, 1)):
        check_int(value, name, caller, low)
    sizes = [n_inputs] + [width] * depth + [n_outputs]
    gen = torch.Generator().manual_seed(int(random_state))
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        linear = torch.nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            linear.weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=gen)
            linear.bias.normal_(0.0, bias_std, generator=gen)
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def student_seed(seed: int, width: int, depth: int) -> int:
    """The initialisation seed of student (width, depth) in run ``seed``.

    Examples
    --------
    >>> from scaling.teacher_student import student_seed
    >>> student_seed(0, 22, 2) == student_seed(0, 22, 2) != student_seed(1, 22, 2)
    True
    """
    return int(np.random.SeedSequence([seed, width, depth]).generate_state(1, np.uint64)[0])
