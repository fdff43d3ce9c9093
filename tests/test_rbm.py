import itertools

import numpy as np
import scipy.sparse as sp

from bookrbm import rbm


def tiny_params(seed=0, n_visible=5, n_hidden=3):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(0, 1, (n_visible, n_hidden)),
        rng.normal(0, 1, n_visible),
        rng.normal(0, 1, n_hidden),
    )


def test_free_energy_equals_minus_log_sum_over_hidden_states():
    weights, visible_bias, hidden_bias = tiny_params()
    v = np.array([[1.0, 0.0, 0.6, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0], [0.8, 1.0, 0.4, 0.2, 0.6]])
    # F(v) = -log Σ_h exp(-E(v, h)), E(v, h) = -v·b_v - h·b_h - vᵀ W h, summed over all 2³ h
    hidden_states = np.array(list(itertools.product([0, 1], repeat=3)), dtype=float)
    for row, vector in enumerate(v):
        energies = -(vector @ visible_bias) - hidden_states @ hidden_bias - hidden_states @ (vector @ weights)
        direct = -np.log(np.exp(-energies).sum())
        assert np.isclose(rbm.free_energy(v[row : row + 1], weights, visible_bias, hidden_bias)[0], direct)


def test_softplus_is_log_one_plus_exp_without_overflow_at_any_size():
    x = np.array([-np.inf, -1e30, -200.0, -88.0, -20.0, -1.5, -1e-30, 0.0, 1e-30, 0.3, 20.0, 89.0, 1e30, np.inf], np.float32)
    found = rbm.softplus(x)
    assert found.dtype == np.float32
    exact = np.logaddexp(0.0, x.astype(np.float64))  # float64: no overflow in this range
    # to float32's precision, and to 0 where the value is below its smallest normal number
    assert np.allclose(found, exact, rtol=1e-6, atol=np.finfo(np.float32).tiny)
    # float64 too, where log(1 + e^x) itself would overflow past x = 709
    wide = np.linspace(-800.0, 800.0, 1601)
    assert np.allclose(rbm.softplus(wide), np.logaddexp(0.0, wide), rtol=1e-14, atol=0)
    assert rbm.softplus(np.float32(0.0)) == np.float32(np.log(2.0))
    # in place, as the free energy uses it: the same values, written over its input
    overwritten = x.copy()
    assert rbm.softplus(overwritten, out=overwritten) is overwritten
    assert np.array_equal(overwritten, found)


def test_sparse_and_dense_input_agree():
    params = tiny_params(1)
    v = np.array([[1.0, 0.0, 0.6, 0.0, 0.0], [0.0, 0.4, 0.0, 0.0, 0.2]])
    assert np.allclose(rbm.free_energy(sp.csr_matrix(v), *params), rbm.free_energy(v, *params))
    assert np.allclose(rbm.reconstruct(sp.csr_matrix(v), *params), rbm.reconstruct(v, *params))


def test_mean_free_energy_in_batches_is_the_mean():
    params = tiny_params(2)
    v = sp.random(37, 5, density=0.4, random_state=3, format="csr")
    assert np.isclose(rbm.mean_free_energy(v, *params, batch_size=8), rbm.free_energy(v, *params).mean())


def test_reconstruct_is_the_mean_field_pass():
    weights, visible_bias, hidden_bias = tiny_params(3)
    v = np.array([[0.2, 0.0, 1.0, 0.0, 0.4]])
    hidden = 1 / (1 + np.exp(-(v @ weights + hidden_bias)))
    expected = 1 / (1 + np.exp(-(hidden @ weights.T + visible_bias)))
    assert np.allclose(rbm.reconstruct(v, weights, visible_bias, hidden_bias), expected)
    assert rbm.sigmoid(np.array([-1000.0]))[0] == 0.0  # no overflow warning turned error
