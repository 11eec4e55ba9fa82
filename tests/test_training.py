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


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny students train fastest on one thread (more spin on a busy machine)."""
    from idest.utils import limit_threads

    with limit_threads(1):
        yield


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
        assert math.isnan(a.live_units)  # not measured without ID inputs


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
    assert mse.id_points + mse.id_duplicates_dropped == 600 and mse.id_note == ""
    assert 0 < mse.live_units <= 24


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


# ------------------------------------------------------------ the batched engine is exact

from scaling.teacher_student._engines import (  # noqa: E402
    BatchedEngine,
    LockstepEngine,
    StudentSpec,
)
from scaling.teacher_student._train import (  # noqa: E402
    activation_dimension,
    convergence,
    convergence_start,
    curve_steps,
)

SPECS = [StudentSpec(7, 2, 0), StudentSpec(12, 2, 0), StudentSpec(7, 2, 1), StudentSpec(5, 3, 0)]
OPTIONS = {"loss_name": "kl", "power": 2.0, "bias_std": 0.5, "dtype": "float64"}


def _batches(n_steps, n_inputs=4, seed=0):
    teacher = random_teacher(n_inputs, variant="clean", random_state=seed)
    rng = np.random.default_rng(seed)
    for i in range(n_steps):
        x = teacher.sample_inputs(64, rng)
        y = teacher.outputs(x)
        yield x, np.exp(y - np.logaddexp.reduce(y, axis=1, keepdims=True)), (0.01 if i < 20
                                                                            else 0.001)


def _student_parameters(engine, index):
    """Student ``index``'s (weight, bias) pairs as float64 arrays, cut out of its group."""
    if isinstance(engine, LockstepEngine):
        return [(m.weight.detach().numpy().T, m.bias.detach().numpy())
                for m in engine.models[index][::2]]
    g, row = engine.where[index]
    group, width = engine.groups[g], engine.groups[g].widths[row]
    pairs = []
    for layer, (W, b) in enumerate(zip(group.weights, group.biases, strict=True)):
        rows = W.shape[1] if layer == 0 else width
        cols = W.shape[2] if layer == len(group.weights) - 1 else width
        pairs.append((W[row, :rows, :cols].detach().numpy(), b[row, 0, :cols].detach().numpy()))
    return pairs


@pytest.mark.parametrize(("padding", "loss"), [("none", "kl"), ("all", "kl"),
                                               ("none", "mse"), ("all", "power")])
def test_batched_adam_takes_the_same_steps_as_one_adam_per_student(padding, loss):
    """Stacked parameters, gradients by explicit backpropagation, under one Adam == one
    autograd module and Adam per student (float64, 30 steps, a learning-rate change,
    students of several widths, runs and depths; every loss)."""
    options = {**OPTIONS, "loss_name": loss, "power": {"kl": 2.0, "mse": 2.0,
                                                       "power": 1.5}[loss]}
    n_out = 2 if loss == "kl" else 1
    batched = BatchedEngine(SPECS, 4, n_out, padding=padding, **options)
    reference = LockstepEngine(SPECS, 4, n_out, **options)
    initial = [[(W.copy(), b.copy()) for W, b in _student_parameters(batched, i)]
               for i in range(len(SPECS))]
    for i in range(len(SPECS)):  # the same initial numbers
        for (Wb, bb), (Wr, br) in zip(initial[i], _student_parameters(reference, i),
                                      strict=True):
            np.testing.assert_array_equal(Wb, Wr)
            np.testing.assert_array_equal(bb, br)
    for x, target, lr in _batches(30):
        if loss != "kl":  # one regression target per input
            target = target[:, :1] * 3.0 - 1.0
        batched.step(x, target, lr)
        reference.step(x, target, lr)
    for i in range(len(SPECS)):
        for (Wb, bb), (Wr, br) in zip(_student_parameters(batched, i),
                                      _student_parameters(reference, i), strict=True):
            np.testing.assert_allclose(Wb, Wr, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(bb, br, rtol=1e-10, atol=1e-12)
        moved = max(np.abs(W - W0).max() for (W, _), (W0, _) in
                    zip(_student_parameters(batched, i), initial[i], strict=True))
        assert moved > 1e-3  # the steps did change every student


def test_a_batched_student_does_not_depend_on_its_neighbours_bit_for_bit():
    """The same student alone and in a stack of three, on batches of 100 rows (not a
    multiple of the SIMD width, so a stack's rows meet inside vector blocks): equal
    parameters and outputs, bit for bit."""
    alone = BatchedEngine([StudentSpec(32, 2, 1)], 4, 2, **OPTIONS)
    stacked = BatchedEngine([StudentSpec(32, 2, 0), StudentSpec(32, 2, 1),
                             StudentSpec(32, 2, 2)], 4, 2, **OPTIONS)
    teacher = random_teacher(4, variant="clean", random_state=0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = teacher.sample_inputs(100, rng)
        y = teacher.outputs(x)
        target = np.exp(y - np.logaddexp.reduce(y, axis=1, keepdims=True))
        alone.step(x, target, 0.01)
        stacked.step(x, target, 0.01)
    for (Wa, ba), (Ws, bs) in zip(_student_parameters(alone, 0),
                                  _student_parameters(stacked, 1), strict=True):
        np.testing.assert_array_equal(Wa, Ws)
        np.testing.assert_array_equal(ba, bs)
    x = teacher.sample_inputs(37, rng)
    np.testing.assert_array_equal(alone.outputs(x)[0], stacked.outputs(x)[1])


def test_padding_is_exact_zero_effect_and_zero_gradient():
    engine = BatchedEngine(SPECS, 4, 2, padding="all", **OPTIONS)
    group = engine.groups[0]  # depth 2: widths 7, 12, 7 padded to 12
    assert group.widths == [7, 12, 7] and group.padded == 12
    for x, target, lr in _batches(15):
        engine.step(x, target, lr)
        for layer, (W, b, grad) in enumerate(zip(group.weights, group.biases, group.grads,
                                                 strict=True)):
            W_grad, b_grad = grad[:, :-1], grad[:, -1:]
            for row in (0, 2):  # the width-7 students
                if layer == 0:
                    assert torch.count_nonzero(W[row, :, 7:]) == 0
                    assert torch.count_nonzero(W_grad[row, :, 7:]) == 0
                else:
                    assert torch.count_nonzero(W[row, 7:, :]) == 0
                    assert torch.count_nonzero(W_grad[row, 7:, :]) == 0
                if layer < len(group.weights) - 1:
                    assert torch.count_nonzero(b[row, 0, 7:]) == 0
                    assert torch.count_nonzero(b_grad[row, 0, 7:]) == 0
    hidden = engine.hidden(np.random.default_rng(1).uniform(-.5, .5, (50, 4)).astype("f4"))
    assert [h.shape[1] for h in hidden] == [7, 12, 7, 5]


def test_a_padded_batched_student_has_the_loss_curve_of_the_student_trained_alone():
    teacher = random_teacher(3, variant="clean", random_state=0)
    common = {"seed": 2, "schedule": TINY, "dtype": "float64", "n_eval": 500, "n_id": 0,
              "n_curve": 8, "progress": False}
    together = train_students(teacher, [(6, 2, 0), (15, 2, 0), (6, 2, 1)], padding="all",
                              **common)
    for student, batched in zip([(6, 2, 0), (15, 2, 0), (6, 2, 1)], together, strict=True):
        (alone,) = train_students(teacher, [student], engine="lockstep", **common)
        assert batched.curve_steps == alone.curve_steps and len(alone.curve_steps) > 5
        np.testing.assert_allclose(batched.curve_losses, alone.curve_losses, rtol=1e-8)
    assert together[0].curve_losses != together[2].curve_losses  # runs differ


def test_curve_steps_hold_the_convergence_window_and_the_rule_reads_it():
    steps = curve_steps(get_schedule("paper-random"), 24)
    # Table 1: the window is the last half of the final phase (lr 0.001 from step 220,000),
    # not the last 10 % of all steps, which would straddle the learning-rate drop
    assert convergence_start(get_schedule("paper-random")) == 230_000
    assert steps[0] == 0 and steps[-1] == 240_000 and {200_000, 220_000, 230_000} <= set(steps)
    assert np.all(np.diff(steps) > 0)
    one_phase = Schedule("one", (Phase(1000, 200, 0.01),), shortened=True)
    assert convergence_start(one_phase) == 900 and 900 in curve_steps(one_phase, 5)
    # a final phase longer than 10 % of the steps holds the whole 10 % window: not shortened
    vetted = Schedule("v", (Phase(150, 200, 0.01), Phase(20, 200, 0.001)), shortened=True)
    assert convergence_start(vetted) == 153 and 153 in curve_steps(vetted, 5)
    assert convergence([0, 230_000, 240_000], [1.0, 0.0100, 0.0096], 230_000) == (True, 0.04)
    assert convergence([0, 230_000, 240_000], [1.0, 0.0100, 0.0094], 230_000)[0] is False
    assert convergence([0, 9, 10], [1.0, 0.5, 0.6]) == (True, -0.2)  # rose: no progress
    with pytest.raises(ValueError, match="must record step 9"):
        convergence([0, 5, 10], [1.0, 0.5, 0.4])


def test_report_judges_each_row_by_its_schedules_window():
    from scaling.teacher_student._report import row_convergence

    row = {"schedule": "paper-random",
           "loss_curve": "0:1.0 216000:0.0200 230000:0.0100 240000:0.0098"}
    assert row_convergence(row) == (True, 0.02)  # the drop at 220,000 is outside the window
    row["loss_curve"] = "0:1.0 216000:0.0200 240000:0.0098"  # recorded under the old rule
    assert row_convergence(row)[0] is None


def test_training_records_the_curve_ending_at_the_final_loss():
    res = train_students(random_teacher(2, variant="clean"), [(10, 2)], schedule=TINY,
                         n_eval=300, n_id=0, n_curve=6, progress=False)[0]
    assert res.curve_steps == curve_steps(TINY, 6) and res.curve_losses[-1] == res.loss
    assert res.curve_losses[0] > res.loss and isinstance(res.converged, bool)


def test_activation_dimension_counts_duplicates_and_passes_other_warnings_through(
        monkeypatch):
    rng = np.random.default_rng(0)
    H = np.maximum(rng.standard_normal((800, 2)) @ rng.standard_normal((2, 12)), 0)
    H[:100] = 0  # 100 identical rows: 99 duplicates dropped, no DuplicatesWarning escapes
    found = activation_dimension(H)
    assert found.id_duplicates_dropped == 99 and found.id_points == 701
    assert 1.5 < found.id_twonn < 2.6 and found.note == ""
    assert found.live_units == int((H > 0).any(axis=0).sum()) <= 12
    one_dead = H.copy()
    one_dead[:, int(np.flatnonzero((H > 0).any(axis=0))[0])] = 0
    assert activation_dimension(one_dead).live_units == found.live_units - 1
    dead = activation_dimension(np.zeros((50, 4)))
    assert math.isnan(dead.id_twonn) and "1 distinct" in dead.note and dead.live_units == 0
    import warnings

    import idest

    real = idest.estimate_all

    def warning_estimate_all(*args, **kwargs):
        warnings.warn("an estimator's own warning", UserWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(idest, "estimate_all", warning_estimate_all)
    with pytest.warns(UserWarning, match="estimator's own warning"):  # passed through
        again = activation_dimension(H)
    assert again == found
