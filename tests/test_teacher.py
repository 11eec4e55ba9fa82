"""Teachers of Sharma & Kaplan 3.1, 3.2.1, A.2, A.3 and the tutorial's latent teacher."""

import numpy as np
import pytest

from scaling.teacher_student._teacher import (
    ProductTeacher,
    latent_gaussian_teacher,
    random_teacher,
    vetted_teacher,
    vetting_score,
)


def _inputs(teacher, n=500, seed=0):
    return teacher.sample_inputs(n, np.random.default_rng(seed))


def test_same_seed_same_teacher_and_different_seed_different():
    a, b, c = (random_teacher(5, random_state=s) for s in (3, 3, 4))
    x = _inputs(a)
    np.testing.assert_array_equal(a.outputs(x), b.outputs(x))
    assert not np.allclose(a.outputs(x), c.outputs(x))
    np.testing.assert_array_equal(_inputs(a, seed=7), _inputs(b, seed=7))


def test_architecture_and_initialisation_match_the_paper():
    t = random_teacher(4, random_state=0)
    assert [W.shape for W in t.weights] == [(20, 600), (600, 600), (600, 2)]
    assert random_teacher(4, loss="mse").n_outputs == 1
    assert random_teacher(4, loss="power").n_outputs == 1  # one LOSSES for teacher and training
    assert t.loss == "kl" and "loss=kl" in t.description
    # weights N(0, 1/fan_in): the sample std of the 600x600 layer is 1/sqrt(600) within 1 %
    assert abs(t.weights[1].std() * np.sqrt(600) - 1) < 0.01
    x = _inputs(t, 10_000)
    assert x.min() >= -0.5 and x.max() < 0.5 and x.dtype == np.float32


def test_one_teacher_for_every_k():
    """k < 20 zeroes the other inputs of a single teacher (section 3.1)."""
    t3, t7 = random_teacher(3), random_teacher(7)
    for W3, W7 in zip(t3.weights, t7.weights, strict=True):
        np.testing.assert_array_equal(W3, W7)


def test_masked_inputs_do_not_change_the_output_but_reach_the_student():
    t = random_teacher(4, variant="authors", random_state=1)
    x = _inputs(t)
    assert x.shape == (500, 20)  # the student sees the 16 distractors too
    x_other = x.copy()
    x_other[:, 4:] = np.random.default_rng(9).uniform(-0.5, 0.5, size=(500, 16))
    np.testing.assert_array_equal(t.outputs(x), t.outputs(x_other))
    x_active = x.copy()
    x_active[:, 3] = -x_active[:, 3]
    assert not np.allclose(t.outputs(x), t.outputs(x_active))


def test_clean_variant_sees_only_active_inputs_and_computes_the_same_function():
    authors = random_teacher(4, variant="authors", random_state=1)
    clean = random_teacher(4, variant="clean", random_state=1)
    x = _inputs(authors)
    assert clean.n_inputs == 4 and _inputs(clean).shape == (500, 4)
    np.testing.assert_allclose(clean.outputs(x[:, :4]), authors.outputs(x), rtol=1e-6)
    assert "variant=clean" in clean.description and "variant=authors" in authors.description


def test_output_scale_multiplies_the_logits():
    x = _inputs(random_teacher(3))
    np.testing.assert_allclose(random_teacher(3).outputs(x),
                               6 * random_teacher(3, output_scale=1.0).outputs(x), rtol=1e-6)


def test_product_teacher_is_the_sum_of_its_parts():
    p1 = random_teacher(3, variant="clean", random_state=1)
    p2 = random_teacher(3, variant="clean", random_state=2)
    p3 = random_teacher(6, variant="clean", random_state=3)
    t = ProductTeacher((p1, p2, p3))
    x = _inputs(t)
    assert x.shape == (500, 12)
    expected = p1.outputs(x[:, :3]) + p2.outputs(x[:, 3:6]) + p3.outputs(x[:, 6:])
    np.testing.assert_allclose(t.outputs(x), expected, rtol=1e-6)


def test_product_teacher_rejects_mixed_losses():
    with pytest.raises(ValueError, match="same loss"):
        ProductTeacher((random_teacher(3), random_teacher(3, loss="mse")))


def test_latent_gaussian_teacher_lives_on_a_d_dimensional_subspace():
    t = latent_gaussian_teacher(4, random_state=5)
    x = _inputs(t)
    assert x.shape == (500, 9)
    assert np.linalg.matrix_rank(x.astype(np.float64), tol=1e-4) == 4
    np.testing.assert_array_equal(t.outputs(x),
                                  latent_gaussian_teacher(4, random_state=5).outputs(x))


def test_vetting_scores_a_linear_teacher_as_one_and_keeps_the_least_linear():
    linear = random_teacher(3, hidden=(), random_state=0)
    assert vetting_score(linear, n_trials=10) == pytest.approx(1.0, abs=1e-5)
    scores = [vetting_score(random_teacher(3, random_state=s), n_trials=20, random_state=s)
              for s in range(4)]
    best, score = vetted_teacher(3, n_candidates=4, n_trials=20, random_state=0)
    assert score == min(scores) and best.seed == int(np.argmin(scores))
    assert 0 < score < 1


@pytest.mark.parametrize("kwargs, message", [
    ({"n_features": 0}, "n_features"),
    ({"n_features": 21}, "n_features"),
    ({"n_features": 3, "loss": "hinge"}, "loss"),
    ({"n_features": 3, "variant": "mine"}, "variant"),
])
def test_bad_teacher_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        random_teacher(**kwargs)
