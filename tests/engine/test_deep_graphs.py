"""Graph depth is bounded by memory, not by the C stack: building, compiling, running and
releasing a 200,000-node chain (opset builders and ONNX) works, in a child process so that
a stack overflow shows up as a failed exit code instead of killing the test run."""

import subprocess
import sys
import textwrap

DEPTH = 200_000


def _run(code, timeout=600):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"exit code {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    )
    return proc.stdout


def test_a_200k_node_chain_built_with_the_opset():
    out = _run(f"""
        import gc
        import numpy as np
        import aiov as ov
        import aiov.opset13 as ops

        x = ops.parameter([4], np.float32, name="x")
        h = x
        for _ in range({DEPTH}):
            h = ops.negative(h)
        model = ov.Model([h], [x])
        assert len(model.get_ordered_ops()) >= {DEPTH}
        compiled = ov.compile_model(model)
        y = compiled(np.arange(4, dtype=np.float32))[0]
        # An even number of negations is the identity.
        assert np.array_equal(y, np.arange(4, dtype=np.float32)), y
        del compiled, model, h, x, y
        gc.collect()
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_a_200k_node_chain_from_onnx():
    out = _run(f"""
        import numpy as np
        from onnx import TensorProto, helper
        import aiov as ov

        nodes = [helper.make_node("Neg", ["t%d" % i], ["t%d" % (i + 1)]) for i in range({DEPTH})]
        graph = helper.make_graph(nodes, "deep",
                                  [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [4])],
                                  [helper.make_tensor_value_info("t{DEPTH}", TensorProto.FLOAT, [4])])
        data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
        model = ov.Core().read_model(data)
        y = ov.compile_model(model)(np.arange(4, dtype=np.float32))[0]
        assert np.array_equal(y, np.arange(4, dtype=np.float32)), y
        del model
        print("ok")
    """)
    assert out.strip().endswith("ok")
