"""The opening the integer-kernel tests' subprocess scripts share: imports, the testing
module, a seeded generator and `ints`, which draws integers over a type's whole range (the
extremes are where accumulations and zero-point folds overflow if they can)."""


def script_prelude(seed):
    return f"""import json, numpy as np, aiov as ov
T = ov._core._testing
rng = np.random.default_rng({seed})

def ints(dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)
"""
