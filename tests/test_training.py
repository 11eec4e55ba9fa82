"""Students, schedules and online training (Sharma & Kaplan A.2, Table 1)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from scaling.teacher_student._student import make_student, parameter_count, student_widths  # noqa: E402
from scaling.teacher_student._teacher import latent_gaussian_teacher, random_teacher  # noqa: E402
from scaling.teacher_student._train import (  # noqa: E402
    SCHEDULES,
    Phase,
    Schedule,
    final_hidden_activations,
    get_schedule,
    train_students,
)

TINY = Schedule("test-tiny", (Phase(150, 100, 0.01), Phase(30, 400, 0.001)), shortened=True)
UNTRAINED = Schedule("test-untrained", (Phase(0, 100, 0.01),), shortened=True)


def test_widths_and_parameter_counts():
    assert student_widths(4) == [math.floor(22 * 1.3**i) for i in range(4)]
    for depth in (2, 3, 4):
        model = make_student(20, 37, depth, 2)
        assert sum(p.numel() for p in model.parameters()) == parameter_count(20, 37, depth, 2)
        assert sum(isinstance(m, torch.nn.Linear) for m in model) == depth + 1


def test_student_initialisation_is_seeded_with_the_authors_scales():
    a, b = make_student(20, 300, 2, 2, random_state=4), make_student(20, 300, 2, 2,
                                                                     random_state=4)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    hidden = a[2]
    assert abs(hidden.weight.std().item() * math.sqrt(300) - 1) < 0.02
    assert abs(hidden.bias.std().item() - 0.5) < 0.1


def test_schedules_follow_table_1_and_shortened_ones_say_so():
    paper = get_schedule("paper-random")
    assert [(p.steps, p.batch_size, p.lr) for p in paper.phases] == [
        (200_000, 200, 0.01), (20_000, 1000, 0.01), (20_000, 4000, 0.001)]
    assert not paper.shortened
    for name, schedule in SCHEDULES.items():
        assert schedule.shortened == (not name.startswith("paper")), name
    with pytest.raises(ValueError, match="get_schedule: schedule must be one of"):
        get_schedule("forever")


def test_tiny_training_reduces_the_kl_loss_and_reports_ce_and_entropy():
    teacher = random_teacher(3, variant="clean", random_state=0)
    shapes = [(16, 2), (16, 3)]
    before = train_students(teacher, shapes, seed=1, schedule=UNTRAINED, n_eval=2000,
                            n_id=0, progress=False)
    after = train_students(teacher, shapes, seed=1, schedule=TINY, n_eval=2000, n_id=0,
                           progress=False)
    for b, a in zip(before, after, strict=True):
        assert a.loss < 0.5 * b.loss
        assert a.loss > 0 and a.cross_entropy == pytest.approx(a.loss + a.teacher_entropy)
        assert a.teacher_entropy == b.teacher_entropy  # the same held-out sample
        assert a.steps == 180 and a.samples == 150 * 100 + 30 * 400 and a.shortened


def test_lockstep_training_does_not_depend_on_the_other_students():
    teacher = random_teacher(2, variant="clean", random_state=0)
    alone = train_students(teacher, [(12, 2)], seed=3, schedule=TINY, n_eval=500, n_id=0,
                           progress=False)
    together = train_students(teacher, [(20, 2), (12, 2)], seed=3, schedule=TINY,
                              n_eval=500, n_id=0, progress=False)
    assert alone[0].loss == together[1].loss


def test_mse_and_power_losses_on_the_latent_teacher_and_the_final_layer_id():
    teacher = latent_gaussian_teacher(2, random_state=0)
    mse, power = (train_students(teacher, [(24, 2)], seed=0, schedule=TINY, loss=loss,
                                 power=3.0, n_eval=500, n_id=600, progress=False)[0]
                  for loss in ("mse", "power"))
    assert math.isnan(mse.cross_entropy) and mse.power == 2.0 and power.power == 3.0
    assert mse.loss > 0 and power.loss > 0
    # the data lie on a 2-dimensional plane: the final layer's ID is far below its width 24
    assert 1.0 < mse.id_twonn < 5.0 and 1.0 < mse.id_mle < 5.0
    assert mse.id_distinct <= 600


def test_final_hidden_activations_are_the_last_relu_outputs():
    model = make_student(3, 10, 3, 2, random_state=0)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 3)).astype(np.float32)
    h = final_hidden_activations(model, x)
    assert h.shape == (50, 10) and h.min() >= 0
    out = model[-1](torch.from_numpy(h)).detach().numpy()
    np.testing.assert_allclose(out, model(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_bad_training_arguments_raise():
    with pytest.raises(ValueError, match="two-logit"):
        train_students(random_teacher(2, loss="mse"), [(8, 2)], schedule=TINY)
    with pytest.raises(ValueError, match="loss must be one of"):
        train_students(random_teacher(2), [(8, 2)], schedule=TINY, loss="hinge")
    with pytest.raises(ValueError, match="at least one"):
        train_students(random_teacher(2), [], schedule=TINY)
