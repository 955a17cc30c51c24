"""Editing a Model after it is built: its parameters, extra outputs and results, and its runtime info."""

from __future__ import annotations

from ._any import OVAny, RTMap
from ._graph import Node, Output, _PortBase, make_result


def _find_port(model, item, position):
    """An output port named by a tensor name, a (node name, output index) pair, or a port."""
    where = "" if position is None else f" at index {position}"
    if isinstance(item, _PortBase):
        return Output(item._node, item._index)
    if isinstance(item, str):
        for node in model.get_ordered_ops():
            for port in node.outputs():
                if item in port.get_names():
                    return port
        raise RuntimeError(f"add_outputs: the model has no tensor named {item!r}")
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int):
        for node in model.get_ordered_ops():
            if node.get_friendly_name() == item[0] and node.get_type_name() != "Result":
                if not 0 <= item[1] < node.get_output_size():
                    raise RuntimeError(
                        f"add_outputs: node {item[0]!r} has {node.get_output_size()} output(s), not output {item[1]}"
                    )
                return node.output(item[1])
        raise RuntimeError(f"add_outputs: the model has no node named {item[0]!r}")
    raise TypeError(f"Incorrect type of a value to add as output{where}.")


def add_outputs(model, outputs) -> list:
    """Makes more ports outputs of the model; returns the model's new output ports."""
    if isinstance(outputs, list):
        items = [(_find_port(model, item, i)) for i, item in enumerate(outputs)]
    else:
        items = [_find_port(model, outputs, None)]
    added = []
    for port in items:
        for existing in model.outputs:
            node, index = existing.get_node().input_value(0)._source()
            if node == port.get_node() and index == port.get_index():
                added.append(existing)
                break
        else:
            model._results.append(make_result(port))
            model._order()
            added.append(model._results[-1].output(0))
    return added


def add_results(model, results) -> None:
    results = [results] if isinstance(results, Node) else list(results)
    for r in results:
        if not isinstance(r, Node) or r.get_type_name() != "Result":
            raise TypeError(f"add_results takes Result nodes, got {r!r}")
    model._results.extend(results)
    model._order()


def remove_result(model, result) -> None:
    model._results = [r for r in model._results if r != result]


def _check_parameter(param, what):
    if not isinstance(param, Node) or param.get_type_name() != "Parameter":
        raise TypeError(f"{what} takes parameter() nodes, got {param!r}")


def replace_parameter(model, index, parameter) -> None:
    """The `index`-th parameter becomes `parameter`, and every node that read the old one reads the
    new one. As in OpenVINO, shapes are re-inferred by validate_nodes_and_infer_types."""
    _check_parameter(parameter, "replace_parameter")
    count = len(model._parameters)
    if not isinstance(index, int) or not -count <= index < count:
        raise IndexError(f"replace_parameter: index {index!r} is out of range (the model has {count} parameters)")
    old = model._parameters[index]
    for target in old.output(0).get_target_inputs():
        target.replace_source_output(parameter.output(0))
    model._parameters[index] = parameter


def add_parameters(model, parameters) -> None:
    parameters = [parameters] if isinstance(parameters, Node) else list(parameters)
    for p in parameters:
        _check_parameter(p, "add_parameters")
        if model.get_parameter_index(p) >= 0:
            raise RuntimeError(f"add_parameters: {p!r} is already a parameter of the model")
    model._parameters.extend(parameters)


def remove_parameter(model, parameter) -> None:
    """Drops a parameter from the model's list; the nodes that read it are the caller's to rewire
    (as in OpenVINO: a parameter still read makes the model invalid until then)."""
    model._parameters = [p for p in model._parameters if p != parameter]


# -- runtime info: nested string-keyed maps --
def rt_info(model) -> RTMap:
    info = model.__dict__.get("_rt_info")
    if info is None:
        info = model.__dict__["_rt_info"] = RTMap()
    return info


def _path(path) -> list:
    if isinstance(path, str):
        return [path]
    if isinstance(path, (list, tuple)) and all(isinstance(p, str) for p in path):
        return list(path)
    raise TypeError(f"an rt_info path is a key or a list of keys, got {path!r}")


def get_rt_info(model, path=None):
    info = rt_info(model)
    if path is None:
        return info
    keys = _path(path)
    node = info
    for depth, key in enumerate(keys):
        inner = node.value if isinstance(node, OVAny) else node
        if not isinstance(inner, dict) or key not in inner:
            raise RuntimeError(f"rt_info has no {'/'.join(keys[: depth + 1])!r}")
        node = dict.__getitem__(inner, key) if isinstance(inner, RTMap) else inner[key]
    return node if isinstance(node, OVAny) else OVAny(node)


def has_rt_info(model, path) -> bool:
    try:
        get_rt_info(model, path)
    except RuntimeError:
        return False
    return True


def set_rt_info(model, value, path) -> None:
    keys = _path(path)
    node = rt_info(model)
    for key in keys[:-1]:
        inner = dict.get(node, key)
        inner = inner.value if isinstance(inner, OVAny) else inner
        if not isinstance(inner, dict):
            inner = {}
            if isinstance(node, RTMap):
                node[key] = OVAny(inner)
            else:
                node[key] = inner
        node = inner
    node[keys[-1]] = value if isinstance(node, RTMap) else (value.value if isinstance(value, OVAny) else value)
