"""Model: parameters in, results out."""

from __future__ import annotations

import itertools

from . import _core
from ._errors import InputError
from ._graph import Node, Output, _PortBase, as_output, make_result
from ._ports import PortTable
from ._types import as_partial_shape

_model_ids = itertools.count()


def _model_args(args, kwargs):
    """(sinks, parameters, variables, name) from OpenVINO's Model forms: (parameters[, name]),
    (sinks, parameters[, variables][, name]), or any of them by keyword."""
    args = list(args)
    sinks = variables = None
    if len(args) >= 2 and not isinstance(args[1], str):
        sinks = args.pop(0)
        if len(args) >= 2 and not isinstance(args[1], str):
            variables = args.pop(1)
    parameters = args.pop(0) if args else None
    name = args.pop(0) if args else ""
    if args:
        raise TypeError(f"Model(): too many arguments ({len(args)} left over)")
    sinks = kwargs.pop("sinks", sinks)
    parameters = kwargs.pop("parameters", parameters)
    variables = kwargs.pop("variables", variables)
    name = kwargs.pop("name", name)
    if kwargs:
        raise TypeError(f"Model(): unexpected arguments {sorted(kwargs)}")
    return sinks, parameters, variables, name


class Model:
    """``Model(results, parameters, name="")``: results are nodes or output ports (wrapped
    in Result nodes), parameters are the ``parameter()`` nodes the model takes. A stateful
    model also gets its sinks (Assign nodes) and, optionally, its variables:
    ``Model(results, sinks, parameters[, variables], name="")``."""

    def __init__(self, results, *args, **kwargs):
        sinks, parameters, variables, name = _model_args(args, kwargs)
        if isinstance(results, (Node, _PortBase)):
            results = [results]
        if parameters is None:
            raise TypeError("Model() needs the list of its parameters")
        if isinstance(parameters, Node):
            parameters = [parameters]
        self._results = []
        # a multi-output node as a result means all of its outputs, as in OpenVINO
        results = [
            o
            for r in results
            for o in (
                r.outputs()
                if isinstance(r, Node) and r.get_type_name() != "Result" and r.get_output_size() > 1
                else [r]
            )
        ]
        for r in results:
            if isinstance(r, Node) and r.get_type_name() == "Result":
                self._results.append(r)
            else:
                self._results.append(make_result(as_output(r)))
        self._parameters = list(parameters)
        for p in self._parameters:
            if not isinstance(p, Node) or p.get_type_name() != "Parameter":
                raise InputError(f"Model parameters must be parameter() nodes, got {p!r}")
        self._name = name or f"Model{next(_model_ids)}"
        self._friendly_name = self._name
        self._sinks = []
        self._variables = list(variables or [])
        self._order()  # validates: every reachable Parameter is listed, no cycles
        self._name_unnamed_tensors()
        if sinks:
            self.add_sinks(sinks)
        else:
            self._find_variables()

    def _name_unnamed_tensors(self):
        """As OpenVINO does: an input or output tensor without a name gets its Parameter's or
        Result's friendly name, so every input and output can be selected by name."""
        ends = [(p, p._native, 0) for p in self._parameters]
        for r in self._results:
            node, index = r.input_value(0)._source()
            ends.append((r, node._native, index))
        for named_after, native, index in ends:
            if not native.output_names(index):
                native.set_output_names(index, [named_after.get_friendly_name()])

    # -- structure --
    def _engine_graph(self):
        params = [p._native for p in self._parameters]
        outs = []
        for r in self._results:
            node, index = r.input_value(0)._source()
            outs.append((node._native, index))
        return params, outs, [n._native for n in self._sinks]

    def _order(self):
        return _core.topological_order(*self._engine_graph())

    def get_parameters(self) -> list:
        return list(self._parameters)

    @property
    def parameters(self) -> list:
        return self.get_parameters()

    def get_results(self) -> list:
        return list(self._results)

    @property
    def results(self) -> list:
        return self.get_results()

    def get_ordered_ops(self) -> list:
        params, outs, sinks = self._engine_graph()
        # OpenVINO's order: the parameters, the sinks' subgraphs (last sink first), the rest.
        roots = [(s, 0) for s in reversed(sinks)] + outs
        return [Node(n) for n in _core.topological_order(params, roots)] + list(self._results)

    def get_ops(self) -> list:
        return self.get_ordered_ops()

    @property
    def inputs(self) -> list:
        return [p.output(0) for p in self._parameters]

    @property
    def outputs(self) -> list:
        return [r.output(0) for r in self._results]

    def input(self, key=None, *, tensor_name=None) -> Output:
        return PortTable(self.inputs, "input").port(tensor_name if tensor_name is not None else key)

    def output(self, key=None, *, tensor_name=None) -> Output:
        return PortTable(self.outputs, "output").port(tensor_name if tensor_name is not None else key)

    def evaluate(self, output_tensors, input_tensors) -> bool:
        """Runs the model on the given Tensors, into the given output Tensors."""
        from ._evaluate import evaluate_model

        return evaluate_model(self, output_tensors, input_tensors)

    def get_parameter_index(self, parameter) -> int:
        for i, p in enumerate(self._parameters):
            if p == parameter:
                return i
        return -1

    def get_result_index(self, value) -> int:
        for i, r in enumerate(self._results):
            if r == value or r.output(0) == value:
                return i
        return -1

    def get_output_size(self) -> int:
        return len(self._results)

    def get_output_element_type(self, i: int):
        return self.outputs[i].get_element_type()

    def get_output_partial_shape(self, i: int):
        return self.outputs[i].get_partial_shape()

    def get_output_shape(self, i: int):
        return self.outputs[i].get_shape()

    def get_output_op(self, i: int) -> Node:
        return self._results[i]

    def get_result(self) -> Node:
        return self._results[0]

    def is_dynamic(self) -> bool:
        return any(p.get_output_partial_shape(0).is_dynamic for p in self._parameters) or any(
            o.get_partial_shape().is_dynamic for o in self.outputs
        )

    @property
    def dynamic(self) -> bool:
        return self.is_dynamic()

    def get_name(self) -> str:
        return self._name

    @property
    def name(self) -> str:
        return self._name

    def get_friendly_name(self) -> str:
        return self._friendly_name

    def set_friendly_name(self, name: str):
        self._friendly_name = name

    @property
    def friendly_name(self) -> str:
        return self._friendly_name

    @friendly_name.setter
    def friendly_name(self, name: str):
        self._friendly_name = name

    # -- stateful models (sinks and variables) --
    def get_sinks(self) -> list:
        return list(self._sinks)

    sinks = property(get_sinks)

    def add_sinks(self, sinks) -> None:
        from ._state import as_sink

        added = [as_sink(s) for s in ([sinks] if isinstance(sinks, (Node, _PortBase)) else sinks)]
        self._sinks = self._sinks + added
        try:
            self._find_variables()
        except InputError:
            pass  # a model in the middle of an edit (OpenVINO checks it when it is compiled)

    def remove_sink(self, sink) -> None:
        self._sinks = [s for s in self._sinks if s != sink]

    def get_sink_index(self, value) -> int:
        if not isinstance(value, (Node, _PortBase)):
            raise TypeError("Incorrect argument type. Sink node is expected as argument.")
        node = value if isinstance(value, Node) else value.get_node()
        for i, s in enumerate(self._sinks):
            if s == node:
                return i
        return -1

    def _find_variables(self):
        from ._state import variable_of

        known = {v.get_info().variable_id for v in self._variables}
        for native in self._order():
            if native.op_type in ("ReadValue", "Assign"):
                variable = variable_of(Node(native))
                if variable.get_info().variable_id and variable.get_info().variable_id not in known:
                    known.add(variable.get_info().variable_id)
                    self._variables.append(variable)

    def get_variables(self) -> list:
        return list(self._variables)

    variables = property(get_variables)

    def add_variables(self, variables) -> None:
        self._variables.extend(variables)

    def remove_variable(self, variable) -> None:
        self._variables = [v for v in self._variables if v is not variable]

    def get_variable_by_id(self, variable_id: str):
        for v in self._variables:
            if v.get_info().variable_id == variable_id:
                return v
        raise RuntimeError(f"the model has no variable '{variable_id}'")

    # -- reshape --
    def reshape(self, shapes, variables_shapes=None):
        """New input shapes: one shape (single-input models), a list in input order, or a
        dict keyed by input index, name or port. Every node's output is re-inferred."""
        if isinstance(shapes, dict):
            table = PortTable(self.inputs, "input")
            items = [(table.index(k), v) for k, v in shapes.items()]
        elif len(self._parameters) == 1 and not (
            isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple))
        ):
            items = [(0, shapes)]
        else:
            if len(shapes) != len(self._parameters):
                raise InputError(f"reshape: expected {len(self._parameters)} shapes, got {len(shapes)}")
            items = list(enumerate(shapes))
        previous = [(p, p.get_output_partial_shape(0)) for p in self._parameters]
        from ._state import reshape_variables

        restore_variables = reshape_variables(self, variables_shapes or {})
        try:
            for index, shape in items:
                self._parameters[index].set_partial_shape(as_partial_shape(shape))
            self.validate_nodes_and_infer_types()
        except Exception:
            restore_variables()
            for p, shape in previous:
                p.set_partial_shape(shape)
            self.validate_nodes_and_infer_types()
            raise

    def validate_nodes_and_infer_types(self):
        for n in self._order():
            n.revalidate()

    def clone(self) -> "Model":
        """A deep copy: reshaping or renaming the clone leaves this model as it is."""
        mapping = {}
        for native in self._order():
            if native.op_type == "Parameter":
                new = _core.make_parameter(
                    native.output_type(0), native.output_shape(0), native.name, native.output_kind(0)
                )
            elif native.op_type == "Constant":
                new = _core.clone_constant(native)
            else:
                inputs = []
                for i in range(native.input_count):
                    src, idx = native.input_value(i)
                    inputs.append((mapping[src.id], idx))
                new = _core.make_node(native.op_type, inputs, native.attributes(), native.name, native.bodies())
            for i in range(native.output_count):
                new.set_output_names(i, native.output_names(i))
            mapping[native.id] = new
        params = [Node(mapping[p._native.id]) for p in self._parameters]
        from ._layout import node_layout, set_node_layout

        for old, new in zip(self._parameters, params):  # layouts travel with the copy, as in OpenVINO
            layout = node_layout(old)
            if not layout.empty:
                set_node_layout(new, layout)
        sinks = [Node(mapping[s._native.id]) for s in self._sinks]
        results = []
        for r in self._results:
            node, index = r.input_value(0)._source()
            res = make_result(Output(Node(mapping[node._native.id]), index))
            res.set_friendly_name(r.get_friendly_name())
            results.append(res)
        clone = Model(results, sinks, params, list(self._variables), self._name)
        clone._friendly_name = self._friendly_name
        return clone

    def _get_raw_address(self) -> int:
        """An identity for this Model object (OpenVINO's address of the underlying model)."""
        return id(self)

    def __deepcopy__(self, memo):
        return self.clone()

    def __copy__(self):
        raise TypeError("a Model cannot be copied shallowly (its nodes would be shared); use deepcopy or clone")

    # -- editing and runtime info (aiov._model_edit) --
    def add_outputs(self, outputs) -> list:
        from ._model_edit import add_outputs

        return add_outputs(self, outputs)

    def add_results(self, results) -> None:
        from ._model_edit import add_results

        add_results(self, results)

    def remove_result(self, result) -> None:
        from ._model_edit import remove_result

        remove_result(self, result)

    def replace_parameter(self, parameter_index: int, parameter) -> None:
        from ._model_edit import replace_parameter

        replace_parameter(self, parameter_index, parameter)

    def add_parameters(self, parameters) -> None:
        from ._model_edit import add_parameters

        add_parameters(self, parameters)

    def remove_parameter(self, parameter) -> None:
        from ._model_edit import remove_parameter

        remove_parameter(self, parameter)

    @property
    def rt_info(self):
        from ._model_edit import rt_info

        return rt_info(self)

    def get_rt_info(self, path=None):
        from ._model_edit import get_rt_info

        return get_rt_info(self, path)

    def has_rt_info(self, path) -> bool:
        from ._model_edit import has_rt_info

        return has_rt_info(self, path)

    def set_rt_info(self, value, path) -> None:
        from ._model_edit import set_rt_info

        set_rt_info(self, value, path)

    def __repr__(self):
        ins = ",\n".join(repr(i).replace("<Output", "<ConstOutput") for i in self.inputs)
        outs = ",\n".join(repr(o).replace("<Output", "<ConstOutput") for o in self.outputs)
        return f"<Model: '{self.friendly_name}'\ninputs[\n{ins}\n]\noutputs[\n{outs}\n]>"
