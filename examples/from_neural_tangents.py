"""neural-tangents and ntkc side by side: the same empirical NTK, a dataset's kernel in batches,
and predictions of gradient-descent training, each neural-tangents call in the comment above
its ntkc counterpart. Runs with ntkc alone (neural-tangents is compared when it imports).

    python examples/from_neural_tangents.py
"""

import jax
import jax.numpy as jnp
import numpy as np

import ntkc


def f(params, x):  # any f(params, x): here a two-layer MLP with 10 logits
    return jnp.tanh(x @ params["w"]) @ params["v"]


rng = np.random.default_rng(0)
params = {"w": jnp.asarray(rng.normal(size=(8, 256)) / np.sqrt(8), jnp.float32),
          "v": jnp.asarray(rng.normal(size=(256, 10)) / 16, jnp.float32)}
x_train = rng.normal(size=(64, 8)).astype(np.float32)
x_test = rng.normal(size=(16, 8)).astype(np.float32)
y_train = jax.nn.one_hot(rng.integers(0, 10, 64), 10)

# 1. The empirical NTK of a batch.
# import neural_tangents as nt
# kernel_fn = nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0,
#                                 implementation=nt.NtkImplementation.STRUCTURED_DERIVATIVES)
kernel_fn = ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0,
                        implementation=ntkc.NtkImplementation.STRUCTURED_DERIVATIVES)
# ... or in ntkc's own words: ntkc.ntk_fn(f, trace_axes=(), vmap_axes=0, method="structured")
k = jax.jit(kernel_fn)(x_test, x_train, params)          # the same call, the same layout
print("full kernel:", k.shape)                           # (16, 64, 10, 10)

# 2. A dataset's kernel, in batches.
# batched = nt.batch(nt.empirical_ntk_fn(f, vmap_axes=0), batch_size=16, store_on_device=False)
# k_train = batched(x_train, None, params)
k_train = ntkc.ntk_matrix(f, params, x_train, memory_limit=64 << 20, progress=False)  # tiles sized to fit
print("traced train kernel:", k_train.shape)             # (64, 64)

# 3. Predictions of gradient-descent training on the MSE loss (infinite time).
# k_test_train = nt.empirical_ntk_fn(f, vmap_axes=0)(x_test, x_train, params)
# predict_fn = nt.predict.gradient_descent_mse(k_train, y_train, diag_reg=1e-4)
k_test_train = ntkc.ntk_fn(f, vmap_axes=0)(x_test, x_train, params)
predict_fn = ntkc.predict.gradient_descent_mse(k_train, y_train, diag_reg=1e-4)
fx_train, fx_test = predict_fn(None, f(params, x_train), f(params, x_test), k_test_train)
print("predictions:", fx_test.shape)                     # (16, 10)

# 4. What ntkc adds: the kernel as an operator (never formed when matrix-free is cheaper) ...
op = ntkc.ntk_operator(f, params, x_train)
op_test = ntkc.ntk_operator(f, params, x_test, x_train)
fx_train_op, fx_test_op = ntkc.predict.gradient_descent_mse(op, y_train, diag_reg=1e-4)(
    None, f(params, x_train), f(params, x_test), op_test)
print("operator:", op.choice.mode, "| top eigenvalue:", float(op.eigvalsh(1)[0]))
# ... and the price of each method before anything runs.
print("method=\"auto\" picks", ntkc.cost_report(f, params, x_test, x_train, trace_axes=(), vmap_axes=0).why())

# Check against a brute-force oracle: per-example Jacobians contracted over every parameter.
def oracle(x1, x2):
    j1, j2 = (jax.vmap(jax.jacrev(lambda p, x: f(p, x[None])[0]), (None, 0))(params, x) for x in (x1, x2))
    return sum(jnp.einsum("aip,bjp->abij", a.reshape(*a.shape[:2], -1), b.reshape(*b.shape[:2], -1))
               for a, b in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)))


full = oracle(x_test, x_train)
agree = (np.allclose(k, full, rtol=1e-4, atol=1e-4)
         and np.allclose(k_train, np.einsum("abii->ab", oracle(x_train, x_train)) / 10, rtol=1e-4, atol=1e-4)
         and np.allclose(fx_test, fx_test_op, rtol=1e-3, atol=1e-3))
print("agree with the oracle:", agree)

try:  # neural-tangents itself, where it is installed and imports on this JAX
    import neural_tangents as nt
except Exception:  # noqa: BLE001 — not installed, or an old release on a newer JAX
    nt = None
if nt is not None:
    k_nt = nt.empirical_ntk_fn(f, trace_axes=(), vmap_axes=0, implementation=3)(x_test, x_train, params)
    print("neural-tangents gives the same kernel:", np.allclose(k, k_nt, rtol=1e-4, atol=1e-4))
