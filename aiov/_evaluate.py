"""Model.evaluate and Node.evaluate: run a model (or one node) on Tensors, writing into the output
Tensors the caller gives, as OpenVINO's evaluate does."""

from __future__ import annotations

from . import _core


def evaluate_model(model, outputs, inputs) -> bool:
    from ._runtime import compile_model

    if len(outputs) != len(model.outputs) or len(inputs) != len(model.inputs):
        raise RuntimeError(
            f"Cannot evaluate model! It takes {len(model.inputs)} input(s) and gives {len(model.outputs)} output(s); "
            f"got {len(inputs)} input and {len(outputs)} output tensors"
        )
    try:
        results = compile_model(model, "CPU")([t.data for t in inputs])
        for target, produced in zip(outputs, results.to_tuple()):
            if tuple(target.get_shape()) != produced.shape:
                target.set_shape(list(produced.shape))
            target.data[...] = produced
    except RuntimeError as exc:
        raise RuntimeError(f"Cannot evaluate model! {exc}") from exc
    return True


def evaluate_node(node, outputs, inputs) -> bool:
    """The node's op, with its attributes, on parameters shaped like `inputs`."""
    from ._graph import Node
    from ._model import Model
    from .opset import parameter

    params = [parameter(list(t.get_shape()), t.get_element_type()) for t in inputs]
    native = _core.make_node(
        node.get_type_name(), [(p._native, 0) for p in params], node._native.attributes(), node.get_friendly_name()
    )
    copy = Node(native)
    return evaluate_model(Model(copy.outputs(), params), outputs, inputs)
