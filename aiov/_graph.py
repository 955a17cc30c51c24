"""Graph nodes and their ports. Shapes and types come from the native op registry."""

from __future__ import annotations

import math
import numbers
import warnings
import weakref
from collections.abc import Iterable

import numpy as np

from . import _core
from ._types import PartialShape, Shape, Type, shape_from_engine, type_from_id


class _NodeOutput:
    """What an output port and the tensor it produces both tell: output ``index`` of ``node``'s
    element type and shape, and its names."""

    __slots__ = ("_node", "_index")

    def __init__(self, node: "Node", index: int):
        self._node, self._index = node, index

    def get_element_type(self) -> Type:
        return self._node.get_output_element_type(self._index)

    def get_value_kind(self) -> str:
        """aiov's own: "tensor", "sequence", "optional_tensor" or "optional_sequence" (for a
        sequence or optional, the element type and shape are its tensors')."""
        return self._node._native.output_kind(self._index)

    @property
    def element_type(self) -> Type:
        return self.get_element_type()

    def get_partial_shape(self) -> PartialShape:
        return self._node.get_output_partial_shape(self._index)

    @property
    def partial_shape(self) -> PartialShape:
        return self.get_partial_shape()

    def get_shape(self) -> Shape:
        return self.get_partial_shape().to_shape()

    @property
    def shape(self) -> Shape:
        return self.get_shape()

    @property
    def any_name(self) -> str:
        return self.get_any_name()


class TensorDescriptor(_NodeOutput):
    """The tensor an output port produces: its names live here (``set_names``)."""

    __slots__ = ()

    def get_names(self) -> set:
        return set(self._node._native.output_names(self._index))

    @property
    def names(self) -> set:
        return self.get_names()

    @names.setter
    def names(self, names: Iterable[str]):
        self.set_names(names)

    def set_names(self, names: Iterable[str]):
        self._node._native.set_output_names(self._index, sorted(set(names)))

    def add_names(self, names: Iterable[str]):
        self.set_names(self.get_names() | set(names))

    def get_any_name(self) -> str:
        names = self.get_names()
        if not names:
            raise RuntimeError("the tensor has no names")
        return min(names)

    # Value bounds and value symbols, as OpenVINO's descriptor keeps them: set and read back by
    # the caller (aiov's shape inference neither needs nor fills them). None until set.
    def set_lower_value(self, value) -> None:
        self._value_info()["lower"] = self._checked_bound(value, "lower")

    def set_upper_value(self, value) -> None:
        self._value_info()["upper"] = self._checked_bound(value, "upper")

    def get_lower_value(self):
        return _VALUE_INFO.get(self._key(), {}).get("lower")

    def get_upper_value(self):
        return _VALUE_INFO.get(self._key(), {}).get("upper")

    def set_value_symbol(self, symbols) -> None:
        from ._symbol import Symbol

        symbols = list(symbols)
        if not all(isinstance(s, Symbol) for s in symbols):
            raise TypeError(f"set_value_symbol takes a list of Symbols, got {symbols!r}")
        count = self._static_count("value symbols")
        if len(symbols) != count:
            raise ValueError(f"set_value_symbol: the tensor has {count} values, got {len(symbols)} symbols")
        self._value_info()["symbols"] = symbols

    def get_value_symbol(self) -> list:
        return list(_VALUE_INFO.get(self._key(), {}).get("symbols", ()))

    def _key(self):
        return (self._node._native.id, self._index)

    def _value_info(self) -> dict:
        return _VALUE_INFO.setdefault(self._key(), {})

    def _static_count(self, what: str) -> int:
        pshape = self.get_partial_shape()
        if not pshape.is_static:
            raise ValueError(f"{what} need a static shape; the tensor is {pshape}")
        return math.prod(int(d) for d in pshape.to_shape())

    def _checked_bound(self, value, which: str):
        from ._tensor import Tensor

        if not isinstance(value, Tensor):
            raise TypeError(f"set_{which}_value takes a Tensor, got {type(value).__name__}")
        self._static_count(f"{which} value bounds")
        want, shape = self.get_element_type(), self.get_shape()
        if value.element_type != want or list(value.shape) != list(shape):
            raise ValueError(
                f"set_{which}_value: the tensor is {want.get_type_name()} {shape}, got a Tensor of "
                f"{value.element_type.get_type_name()} {value.shape}"
            )
        return value

    def get_size(self) -> int:
        """Bytes of the tensor (its shape must be static)."""
        count = 1
        for d in self.get_shape():
            count *= int(d)
        return (count * self.get_element_type().bitwidth + 7) // 8

    @property
    def size(self) -> int:
        return self.get_size()


class _PortBase(_NodeOutput):
    """What Output and ConstOutput share: a node's output seen from outside. Takes attributes of
    the caller's own, as OpenVINO's ports do."""

    __slots__ = ("__dict__",)

    @classmethod
    def _from_node(cls, node: "Node"):
        """The node's first output (OpenVINO's ``Output._from_node``)."""
        return cls(node, 0)

    def _source(self):
        """(node, index) that really produces the data (Results pass through)."""
        if self._node.get_type_name() == "Result":
            return self._node.input_value(0)._source()
        return self._node, self._index

    def get_node(self) -> "Node":
        return self._node

    @property
    def node(self) -> "Node":
        return self._node

    def get_index(self) -> int:
        return self._index

    @property
    def index(self) -> int:
        return self._index

    @property
    def tensor(self) -> TensorDescriptor:
        node, index = self._source()
        return TensorDescriptor(node, index)

    def get_tensor(self) -> TensorDescriptor:
        return self.tensor

    def get_names(self) -> set:
        return self.tensor.get_names()

    @property
    def names(self) -> set:
        return self.get_names()

    def get_any_name(self) -> str:
        return self.tensor.get_any_name()

    def set_names(self, names):
        self.tensor.set_names(names)

    def add_names(self, names):
        self.tensor.add_names(names)

    def __eq__(self, other):
        if not isinstance(other, _PortBase):
            return NotImplemented
        return self._node == other._node and self._index == other._index

    def __hash__(self):
        return hash((self._node._native.id, self._index))

    def __copy__(self):
        return type(self)(self._node, self._index)

    def __deepcopy__(self, memo):
        raise TypeError(f"a port ({type(self).__name__}) cannot be deep-copied: it belongs to its node's graph")

    def __lt__(self, other):
        # OpenVINO orders ports by node, then output index (so they sort and key ordered maps)
        if not isinstance(other, _PortBase):
            return NotImplemented
        return (self._node._native.id, self._index) < (other._node._native.id, other._index)

    def __repr__(self):
        names = ", ".join(sorted(self.get_names()))
        return (
            f"<{type(self).__name__}: names[{names}] shape{self.get_partial_shape()} "
            f"type: {self.get_element_type().get_type_name()}>"
        )


def _port_rt_info(self):
    return _rt_map(self._node, "out", self._index)


_PortBase.get_rt_info = _port_rt_info
_PortBase.rt_info = property(_port_rt_info)


def _target_inputs(port) -> set:
    """The input ports that read `port` now: engine nodes, and the Results (Python-side) over it."""
    node, index = port._node, port._index
    found = set()
    if node._result_input is None:
        found.update(Input(Node(user), i) for user, i in node._native.users(index))
    found.update(Input(r, 0) for r in list(_RESULT_NODES) if r._result_input == Output(node, index))
    return found


_PortBase.get_target_inputs = _target_inputs
_PortBase.target_inputs = property(_target_inputs)


class Output(_PortBase):
    """An output port of a node in a Model."""

    __slots__ = ()

    def remove_target_input(self, target) -> None:
        raise RuntimeError("an input always reads some output: use Input.replace_source_output instead")

    def replace(self, replacement) -> None:
        """Every input that reads this port reads `replacement` instead; its tensor takes this
        port's names too. Shapes are re-inferred by Model.validate_nodes_and_infer_types."""
        replacement = as_output(replacement)
        for target in self.get_target_inputs():
            target.replace_source_output(replacement)
        replacement.add_names(self.get_names())


class ConstOutput(_PortBase):
    """A read-only output port (a Model's inputs/outputs as a CompiledModel sees them)."""

    __slots__ = ()

    def set_names(self, names):
        raise RuntimeError("ports of a compiled model are read-only")

    def add_names(self, names):
        raise RuntimeError("ports of a compiled model are read-only")


class Input:
    """An input port of a node."""

    __slots__ = ("_node", "_index")

    def __init__(self, node: "Node", index: int):
        self._node, self._index = node, index

    def get_node(self) -> "Node":
        return self._node

    def get_index(self) -> int:
        return self._index

    def __eq__(self, other):
        return isinstance(other, Input) and self._node == other._node and self._index == other._index

    def __hash__(self):
        return hash((self._node._native.id, self._index, "in"))

    def __repr__(self):
        return f"<Input: {self._index} of {self._node.get_type_name()} '{self._node.name}'>"

    def get_source_output(self) -> Output:
        return self._node.input_value(self._index)

    def replace_source_output(self, new_source) -> None:
        """This input reads `new_source` from now on (the node's shapes follow at the next
        Model.validate_nodes_and_infer_types, as in OpenVINO)."""
        source = as_output(new_source)
        if self._node._result_input is not None:
            self._node._result_input = source
            self._node._native.set_parameter(source.get_element_type()._id, source.get_partial_shape()._engine())
            return
        self._node._native.set_input(self._index, source._node._native, source._index)

    def get_rt_info(self):
        return _rt_map(self._node, "in", self._index)

    @property
    def rt_info(self):
        return self.get_rt_info()

    def get_tensor(self):
        return self.get_source_output().get_tensor()

    def get_element_type(self) -> Type:
        return self.get_source_output().get_element_type()

    def get_value_kind(self) -> str:
        return self.get_source_output().get_value_kind()

    def get_partial_shape(self) -> PartialShape:
        return self.get_source_output().get_partial_shape()

    def get_shape(self) -> Shape:
        return self.get_source_output().get_shape()


# Value bounds and symbols of output tensors: (node id, output index) -> {"lower"|"upper"|"symbols": ...},
# beside the engine node as _RT_INFO is (below).
_VALUE_INFO: dict = {}

# Runtime info of nodes and ports: (node id, "node" | "in" | "out", index) -> RTMap. Kept beside the
# engine node (ids are never reused) because wrappers are made afresh on each graph access.
_RT_INFO: dict = {}


def _rt_map(node: "Node", kind: str, index: int):
    from ._any import RTMap

    key = (node._native.id, kind, index)
    found = _RT_INFO.get(key)
    if found is None:
        found = _RT_INFO[key] = RTMap()
    return found


# What a Node's comparison operators build a comparison node against (never another Node: that is
# identity, which sets and dicts of nodes rely on)
_VALUES = (np.ndarray, np.generic, numbers.Number)

# Op type -> Node subclass for the ops OpenVINO exposes as classes (aiov.op registers them), so that
# a node reached through the graph is an instance of the same class it was built as.
NODE_CLASSES: dict = {}


class DiscreteTypeInfo:
    """What kind of node this is: its type name and the opset that defines it."""

    __slots__ = ("name", "version_id", "parent")

    def __init__(self, name: str, version_id: str, parent=None):
        self.name, self.version_id, self.parent = name, version_id, parent

    def __eq__(self, other):
        return isinstance(other, DiscreteTypeInfo) and (self.name, self.version_id) == (other.name, other.version_id)

    def __hash__(self):
        return hash((self.name, self.version_id))

    def __repr__(self):
        return f"<DiscreteTypeInfo: {self.name} v{self.version_id}>"


_OPENVINO_NAMES = {}


def openvino_type_name(op_type: str) -> str:
    """The type name OpenVINO gives a registry op: the op's own name when it is one of its IR
    layer types (or it has none), else its IR layer type (ConvTranspose is OpenVINO's
    ConvolutionBackpropData)."""
    if not _OPENVINO_NAMES:
        for desc in _core.op_schema():
            ir_types = [t for t in desc["ir_types"] if not t.startswith("aiov.")]
            name = desc["type"] if not ir_types or desc["type"] in ir_types else ir_types[0]
            _OPENVINO_NAMES[desc["type"]] = name
    return _OPENVINO_NAMES.get(op_type, op_type)


def _version_of(op_type: str) -> str:
    if op_type in ("Parameter", "Constant", "Result"):
        return "opset1"
    for desc in _core.op_schema():
        if desc["type"] == op_type:
            return desc["ir_version"] or "aiov1"
    return "aiov1"


class Node:
    """A graph node: an op with inputs, attributes and typed outputs."""

    __slots__ = ("_native", "_result_input", "__weakref__")

    def __new__(cls, *args, **kwargs):
        if cls is Node and args and isinstance(args[0], _core.Node):
            cls = NODE_CLASSES.get(args[0].op_type, Node)
        return object.__new__(cls)

    def __init__(self, native):
        self._native = native
        self._result_input = None  # for Result nodes (Python-side pass-through)

    # identity; against an array or a number, a comparison node (OpenVINO's deprecated operators)
    def __eq__(self, other):
        if isinstance(other, _VALUES):
            return self._compare(other, "equal")
        return isinstance(other, Node) and other._native.id == self._native.id

    def __ne__(self, other):
        if isinstance(other, _VALUES):
            return self._compare(other, "not_equal")
        return not self.__eq__(other)

    def __lt__(self, other):
        return self._compare(other, "less")

    def __le__(self, other):
        return self._compare(other, "less_equal")

    def __gt__(self, other):
        return self._compare(other, "greater")

    def __ge__(self, other):
        return self._compare(other, "greater_equal")

    def _compare(self, other, builder):
        if not isinstance(other, (Node, Output) + _VALUES):
            return NotImplemented
        warnings.warn(
            f"comparing a node with an operator is deprecated; use opset.{builder}() instead",
            DeprecationWarning,
            stacklevel=3,
        )
        return self._binary(other, builder)

    def __hash__(self):
        return hash(self._native.id)

    def get_instance_id(self) -> int:
        return self._native.id

    def get_rt_info(self):
        return _rt_map(self, "node", 0)

    @property
    def rt_info(self):
        return self.get_rt_info()

    def get_type_name(self) -> str:
        return "Result" if self._result_input is not None else openvino_type_name(self._native.op_type)

    @property
    def type_name(self) -> str:
        return self.get_type_name()

    def get_type_info(self) -> DiscreteTypeInfo:
        op_type = "Result" if self._result_input is not None else self._native.op_type
        return DiscreteTypeInfo(self.get_type_name(), _version_of(op_type))

    @property
    def type_info(self) -> DiscreteTypeInfo:
        return self.get_type_info()

    def get_friendly_name(self) -> str:
        return self._native.name

    def set_friendly_name(self, name: str):
        self._native.name = name

    @property
    def friendly_name(self) -> str:
        return self._native.name

    @friendly_name.setter
    def friendly_name(self, name: str):
        self._native.name = name

    def get_name(self) -> str:
        return self._native.name

    @property
    def name(self) -> str:
        return self._native.name

    # outputs
    def get_output_size(self) -> int:
        return 1 if self._result_input is not None else self._native.output_count

    def output(self, index: int = 0) -> Output:
        if not 0 <= index < self.get_output_size():
            raise IndexError(
                f"{self.get_type_name()} '{self.name}' has {self.get_output_size()} output(s), asked for output {index}"
            )
        return Output(self, index)

    def outputs(self) -> list:
        return [Output(self, i) for i in range(self.get_output_size())]

    def get_output_element_type(self, index: int = 0) -> Type:
        if self._result_input is not None:
            return self._result_input.get_element_type()
        return type_from_id(self._native.output_type(index))

    def get_output_partial_shape(self, index: int = 0) -> PartialShape:
        if self._result_input is not None:
            return self._result_input.get_partial_shape()
        return shape_from_engine(self._native.output_shape(index))

    def get_output_shape(self, index: int = 0) -> Shape:
        return self.get_output_partial_shape(index).to_shape()

    def get_output_tensor(self, index: int = 0) -> TensorDescriptor:
        return self.output(index).tensor

    # a node's own type and shape are its first output's
    def get_element_type(self) -> Type:
        return self.get_output_element_type(0)

    def get_partial_shape(self) -> PartialShape:
        return self.get_output_partial_shape(0)

    element_type = property(get_element_type)
    partial_shape = property(get_partial_shape)

    @property
    def shape(self) -> Shape:
        return self.get_output_shape(0)

    # inputs
    def get_input_size(self) -> int:
        return 1 if self._result_input is not None else self._native.input_count

    def input_value(self, index: int) -> Output:
        if self._result_input is not None:
            if index != 0:
                raise IndexError("Result has one input")
            return self._result_input
        native, out = self._native.input_value(index)
        return Output(Node(native), out)

    def input_values(self) -> list:
        return [self.input_value(i) for i in range(self.get_input_size())]

    def input(self, index: int) -> Input:
        return Input(self, index)

    def inputs(self) -> list:
        return [Input(self, i) for i in range(self.get_input_size())]

    def get_input_tensor(self, index: int) -> TensorDescriptor:
        return self.input_value(index).get_tensor()

    def set_argument(self, index: int, argument) -> None:
        """Input `index` reads `argument` (an output port or a single-output node) from now on."""
        self.input(index).replace_source_output(argument)

    def set_arguments(self, arguments) -> None:
        arguments = list(arguments)
        if len(arguments) != self.get_input_size():
            raise ValueError(f"{self.get_type_name()} takes {self.get_input_size()} inputs, got {len(arguments)}")
        for index, argument in enumerate(arguments):
            self.set_argument(index, argument)

    def evaluate(self, output_tensors, input_tensors) -> bool:
        """Runs this node's op on the given Tensors, into the given output Tensors."""
        from ._evaluate import evaluate_node

        return evaluate_node(self, output_tensors, input_tensors)

    def get_input_element_type(self, index: int) -> Type:
        return self.input_value(index).get_element_type()

    def get_input_partial_shape(self, index: int) -> PartialShape:
        return self.input_value(index).get_partial_shape()

    def get_input_shape(self, index: int) -> Shape:
        return self.input_value(index).get_shape()

    def get_attributes(self) -> dict:
        return {} if self._result_input is not None else self._native.attributes()

    # Parameter only
    def set_partial_shape(self, shape):
        from ._types import as_partial_shape

        shape = as_partial_shape(shape)
        self._native.set_parameter(self._native.output_type(0), shape._engine())

    def set_element_type(self, etype):
        from ._types import as_type

        self._native.set_parameter(as_type(etype)._id, self._native.output_shape(0))

    # Parameter and Result only: what each dimension means
    def get_layout(self):
        from ._layout import node_layout

        return node_layout(self)

    def set_layout(self, layout):
        from ._layout import set_node_layout

        set_node_layout(self, layout)

    @property
    def layout(self):
        return self.get_layout()

    @layout.setter
    def layout(self, layout):
        self.set_layout(layout)

    def get_data(self) -> np.ndarray:
        """A Constant's value (read-only view)."""
        return constant_value(self)

    # arithmetic builds nodes, as in OpenVINO: (a + b) * c
    def _binary(self, other, builder, swap=False):
        from . import opset

        left, right = (other, self) if swap else (self, other)
        return getattr(opset, builder)(left, right)

    def __neg__(self):
        from . import opset

        return opset.negative(self)

    def __repr__(self):
        shapes = ", ".join(str(self.get_output_partial_shape(i)) for i in range(self.get_output_size()))
        return f"<{self.get_type_name()}: '{self.name}' ({shapes})>"


def _arithmetic(name, builder, swap):
    def operator(self, other):
        return self._binary(other, builder, swap)

    operator.__name__, operator.__qualname__ = name, f"Node.{name}"
    return operator


# Python's operators and the opset builders they make: ``a + b`` is add(a, b), ``2 - a``
# (the reflected form) subtract(2, a).
for _name, _builder in (
    ("add", "add"),
    ("sub", "subtract"),
    ("mul", "multiply"),
    ("truediv", "divide"),
    ("pow", "power"),
):
    for _dunder, _swap in ((f"__{_name}__", False), (f"__r{_name}__", True)):
        setattr(Node, _dunder, _arithmetic(_dunder, _builder, _swap))


# Every live Result node, so that an output port can tell which Results read it (a Result has no
# engine node of its own to appear among the engine's consumers).
_RESULT_NODES = weakref.WeakSet()


def make_result(source: Output) -> Node:
    """A Result node: marks a model output; its port shows the source tensor."""
    native = _core.make_parameter(
        source.get_element_type()._id, source.get_partial_shape()._engine(), "", source.get_value_kind()
    )
    node = object.__new__(Node)  # a plain Node: its native stand-in is a Parameter, it is not one
    node.__init__(native)
    node._result_input = source
    native.name = f"Result_{native.id}"
    _RESULT_NODES.add(node)
    return node


def constant_value(node: Node) -> np.ndarray:
    raw = node._native.constant_bytes()
    etype = node.get_output_element_type(0)
    shape = tuple(node.get_output_shape(0))
    if etype.bitwidth < 8:
        return raw
    dt = etype.to_dtype() if etype != Type.bf16 else np.dtype(np.uint16)
    return raw.view(dt).reshape(shape)


def as_output(value) -> Output:
    """Node (its first output), Output or array-like -> an Output port (arrays become Constants)."""
    if isinstance(value, _PortBase):
        return value if isinstance(value, Output) else Output(value._node, value._index)
    if isinstance(value, Node):
        if value.get_output_size() == 0:
            raise ValueError(f"{value.get_type_name()} '{value.name}' has no outputs to read")
        return Output(value, 0)  # a node with several outputs gives its first, as in OpenVINO
    from .opset import constant

    return Output(constant(value), 0)
