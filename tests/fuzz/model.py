"""Model border: ONNX files for ``compile``, ``check`` and ``verify M.onnx``.

A seed model gets 1-3 ModelProto mutations (the graph's here, the initializers' in
``initializers``), sometimes byte damage on top. Each mutator edits the ModelProto in place and
returns a note of what it did (None: nothing to edit in this model).
"""
from __future__ import annotations

import copy
import random
import shutil

import onnx
from onnx import TensorProto, helper

from .case import Case, Plan, flip_bytes, pick, simulate_plan
from .initializers import (drop_one, mut_drop_initializer, mut_elem_type, mut_external_data, mut_initializer_dims,
                           mut_scale_weights, mut_truncate_raw, mut_weights)
from .seeds import Seeds


def mut_drop_node_io(model, rng, ctx):
    """Remove one input or output name of a random node (the node loses an operand)."""
    nodes = [n for n in model.graph.node if len(n.input) or len(n.output)]
    if not nodes:
        return None
    node = rng.choice(nodes)
    field_ = rng.choice([f for f in ("input", "output") if len(getattr(node, f))])
    values = getattr(node, field_)
    index = rng.randrange(len(values))
    del values[index]
    return f"node {node.name or node.op_type!r}: removed {field_} #{index}"


def mut_blank_name(model, rng, ctx):
    """Set one name to "": a node, a node input/output, a graph input/output or an initializer."""
    g = model.graph
    choices = [("node", n, "name") for n in g.node] + [("graph input", v, "name") for v in g.input] + \
              [("graph output", v, "name") for v in g.output] + [("initializer", t, "name") for t in g.initializer]
    for n in g.node:
        choices += [("node input", (n.input, i), None) for i in range(len(n.input))]
        choices += [("node output", (n.output, i), None) for i in range(len(n.output))]
    what, obj, attr = rng.choice(choices)
    if attr:
        setattr(obj, attr, "")
    else:
        obj[0][obj[1]] = ""
    return f"blanked a {what} name"


def mut_drop_attribute(model, rng, ctx):
    """Remove one attribute of a node that has any."""
    nodes = [n for n in model.graph.node if len(n.attribute)]
    if not nodes:
        return None
    node = rng.choice(nodes)
    index = rng.randrange(len(node.attribute))
    name = node.attribute[index].name
    del node.attribute[index]
    return f"node {node.name or node.op_type!r}: removed attribute {name!r}"


def mut_drop_graph_value(model, rng, ctx):
    """Remove one graph input or graph output."""
    which = rng.choice(["input", "output"])
    name = drop_one(getattr(model.graph, which), rng)
    return None if name is None else f"removed graph {which} {name!r}"


def mut_opset(model, rng, ctx):
    """Drop the opset imports, or set the default domain's version to an odd one (0, 1, 5, 22, 1000...)."""
    if rng.random() < 0.25:
        del model.opset_import[:]
        return "removed every opset_import"
    version = rng.choice([0, 1, 5, 6, 7, 8, 9, 13, 21, 22, 23, 24, 1000, -1, 2**62])
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = version
    return f"default opset version {version}"


def mut_ir_version(model, rng, ctx):
    """Set the IR version to an odd value."""
    model.ir_version = rng.choice([0, 1, 2, 3, 4, 7, 11, 12, 100, -1])
    return f"ir_version {model.ir_version}"


DIMS = [0, -1, -7, 1, 2, 3, 5, 64, 10**6, 2**31 - 1, 2**62, "sym", "N", None]


def mut_input_dim(model, rng, ctx):
    """Set one dimension of a graph input (or output) to 0, negative, huge, symbolic or unset,
    or add or remove an axis."""
    values = [v for v in list(model.graph.input) + list(model.graph.output) if v.type.HasField("tensor_type")]
    if not values:
        return None
    value = rng.choice(values)
    dims = value.type.tensor_type.shape.dim
    r = rng.random()
    if r < 0.15:
        dims.add().dim_value = rng.choice([1, 2, 7])
        return f"{value.name!r}: added an axis"
    if r < 0.3 and len(dims):
        del dims[rng.randrange(len(dims))]
        return f"{value.name!r}: removed an axis"
    if r < 0.35:
        value.type.tensor_type.ClearField("shape")
        return f"{value.name!r}: no shape"
    if not len(dims):
        return None
    axis = rng.randrange(len(dims))
    new = rng.choice(DIMS)
    dim = dims[axis]
    if new is None:
        dim.Clear()
    elif isinstance(new, str):
        dim.dim_param = new
    else:
        dim.dim_value = new
    return f"{value.name!r}: dim {axis} = {new!r}"


def mut_cycle(model, rng, ctx):
    """Make a node read its own output or the output of a later node (a cycle / wrong order)."""
    nodes = list(model.graph.node)
    if not nodes:
        return None
    i = rng.randrange(len(nodes))
    j = rng.randrange(i, len(nodes))
    if not len(nodes[i].input) or not len(nodes[j].output):
        return None
    k = rng.randrange(len(nodes[i].input))
    nodes[i].input[k] = nodes[j].output[0]
    return f"node #{i} input {k} reads node #{j}'s output" + (" (its own)" if i == j else "")


def mut_unknown_domain(model, rng, ctx):
    """Move a node to another domain (unknown, ai.onnx.ml, com.microsoft), with or without its opset import."""
    if not len(model.graph.node):
        return None
    node = rng.choice(list(model.graph.node))
    domain = rng.choice(["com.example", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training", "ai.onnx"])
    node.domain = domain
    if rng.random() < 0.6 and domain not in ("ai.onnx",):
        model.opset_import.append(helper.make_opsetid(domain, rng.choice([1, 3, 99])))
    return f"node {node.name or node.op_type!r}: domain {domain!r}"


OP_TYPES = ["Relu", "Sigmoid", "Tanh", "Gemm", "MatMul", "Conv", "Add", "Softmax", "Identity", "Reshape",
            "Transpose", "Flatten", "LSTM", "Loop", "If", "Resize", "ConvTranspose", "MaxPool", "Cast",
            "ArgMax", "Shape", "Where", "Einsum", "NotAnOp", "", "relu"]


def mut_op_type(model, rng, ctx):
    """Change one node's operator to another (supported, unsupported, unknown or empty)."""
    if not len(model.graph.node):
        return None
    node = rng.choice(list(model.graph.node))
    old = node.op_type
    node.op_type = rng.choice(OP_TYPES)
    return f"node {node.name or old!r}: op {old} -> {node.op_type!r}"


ATTR_VALUES = [0, 1, -1, 7, 2**62, -(2**62), 0.5, float("nan"), float("inf"), "x", "", [0], [-1, -1, -1, -1],
               [10**9, 10**9], [], [1.5, 2.5], ["a", "b"]]


def mut_attribute_value(model, rng, ctx):
    """Set an attribute (existing or a typical one: axis, transB, pads, strides, kernel_shape, to,
    alpha, perm) of a node to an odd value of any type."""
    if not len(model.graph.node):
        return None
    node = rng.choice(list(model.graph.node))
    names = [a.name for a in node.attribute] + ["axis", "transA", "transB", "alpha", "beta", "pads", "strides",
                                                  "kernel_shape", "dilations", "group", "to", "perm", "auto_pad"]
    name = rng.choice(names)
    value = rng.choice(ATTR_VALUES)
    for index, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[index]
            break
    try:
        node.attribute.append(helper.make_attribute(name, value))
    except Exception:  # noqa: BLE001 - e.g. an empty list has no type
        return None
    return f"node {node.name or node.op_type!r}: attribute {name}={value!r}"


def mut_duplicate(model, rng, ctx):
    """Duplicate a name: two nodes with one name, two nodes writing one output, two initializers or
    graph inputs with one name, or a whole node twice."""
    g = model.graph
    nodes = list(g.node)
    choice = rng.choice(["node name", "output", "initializer", "graph input", "node"])
    if choice == "node name" and len(nodes) >= 2:
        nodes[1].name = nodes[0].name = nodes[0].name or "same"
    elif choice == "output" and len(nodes) >= 2 and len(nodes[0].output):
        nodes[rng.randrange(1, len(nodes))].output[0] = nodes[0].output[0]
    elif choice == "initializer" and len(g.initializer):
        g.initializer.append(copy.deepcopy(rng.choice(list(g.initializer))))
    elif choice == "graph input" and len(g.input):
        g.input.append(copy.deepcopy(g.input[0]))
    elif choice == "node" and nodes:
        g.node.append(copy.deepcopy(rng.choice(nodes)))
    else:
        return None
    return f"duplicated {choice}"


def mut_remove_node(model, rng, ctx):
    """Remove a node (its consumers then read an undefined value)."""
    if not len(model.graph.node):
        return None
    index = rng.randrange(len(model.graph.node))
    op = model.graph.node[index].op_type
    del model.graph.node[index]
    return f"removed node #{index} ({op})"


def mut_swap_node_inputs(model, rng, ctx):
    """Swap two inputs of a node (e.g. Gemm's data and weight)."""
    nodes = [n for n in model.graph.node if len(n.input) >= 2]
    if not nodes:
        return None
    node = rng.choice(nodes)
    node.input[0], node.input[1] = node.input[1], node.input[0]
    return f"node {node.name or node.op_type!r}: swapped inputs 0 and 1"


def mut_static_batch(model, rng, ctx):
    """Fix the batch axis of the data inputs (and outputs) to a number (1, 2, 4, 16), as exporters
    with a fixed batch write it."""
    size = rng.choice([1, 2, 4, 16])
    inits = {t.name for t in model.graph.initializer}
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name not in inits and len(dims):
            dims[0].Clear()
            dims[0].dim_value = size
    return f"static batch {size}"


def mut_value_info(model, rng, ctx):
    """Declare an intermediate value's type wrongly in value_info (another shape or element type)."""
    produced = [o for n in model.graph.node for o in n.output if o]
    if not produced:
        return None
    name = rng.choice(produced)
    model.graph.value_info.append(helper.make_tensor_value_info(
        name, rng.choice([TensorProto.FLOAT, TensorProto.INT64, TensorProto.DOUBLE]),
        rng.choice([[1], ["N", 7], [2, 3, 4], None])))
    return f"value_info for {name!r}"


def mut_metadata(model, rng, ctx):
    """Odd but harmless metadata: long or unicode doc strings, producer names, metadata_props."""
    text = rng.choice(["ü✓" * 50, "x" * 100000, "", "\n\t", "a\x00b"])
    target = rng.choice(["doc", "producer", "props", "node doc"])
    if target == "doc":
        model.graph.doc_string = text
    elif target == "producer":
        model.producer_name = text
    elif target == "props":
        helper.set_model_props(model, {text[:50] or "k": text})
    elif len(model.graph.node):
        model.graph.node[0].doc_string = text
    return f"metadata: {target}"


MODEL_MUTATORS = {
    mut_static_batch: 3, mut_scale_weights: 4, mut_value_info: 2, mut_metadata: 2,
    mut_drop_node_io: 4, mut_blank_name: 3, mut_drop_attribute: 4, mut_drop_initializer: 3,
    mut_drop_graph_value: 3, mut_opset: 4, mut_ir_version: 2, mut_input_dim: 6, mut_initializer_dims: 5,
    mut_elem_type: 5, mut_truncate_raw: 4, mut_cycle: 2, mut_unknown_domain: 3, mut_op_type: 4,
    mut_attribute_value: 6, mut_duplicate: 3, mut_weights: 4, mut_remove_node: 2, mut_swap_node_inputs: 2,
    mut_external_data: 6,
}


MODEL_SEEDS = {"mlp": 5, "cnn": 3, "two": 2, "intin": 1, "sig": 2, "digits": 2, "dynamo_mlp": 3, "tanh9": 2,
               "skl_mlp": 2}


def build_model_case(case: Case, seeds: Seeds, rng: random.Random, nrng) -> None:
    """A seed model with 1-3 ModelProto mutations (sometimes byte damage on top), then compile,
    check or verify it."""
    seed = seeds.models[pick(rng, MODEL_SEEDS)]
    folder = case.folder / "in"
    for companion in seed.companions:
        shutil.copy(companion, folder / companion.name)
    data = folder / "data.npz"
    shutil.copy(seed.data, data)
    model = onnx.load(str(seed.path), load_external_data=False)
    case.notes.append(f"seed {seed.name}")
    ctx = {"folder": folder}
    for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3])):
        for _attempt in range(5):
            try:
                note = pick(rng, MODEL_MUTATORS)(model, rng, ctx)
            except (IndexError, ValueError, TypeError, AttributeError, KeyError):
                note = None  # an earlier edit removed what this one edits
            if note:
                case.notes.append(note)
                break
    try:
        blob = model.SerializeToString()
    except Exception as e:  # noqa: BLE001
        case.notes.append(f"unserialisable edit ({type(e).__name__}); the seed's bytes instead")
        blob = seed.path.read_bytes()
    if rng.random() < 0.15:
        blob, note = flip_bytes(blob, rng)
        case.notes.append(note)
    path = folder / "model.onnx"
    path.write_bytes(blob)
    case.expect_refusal = ctx.get("refuse")
    command = pick(rng, {"compile": 6, "check": 2, "verify": 2})
    profile = pick(rng, {"ideal": 4, "mrr-incoherent-8b": 2, "mrr-balanced-8b": 1})
    out = case.folder / "out"
    if command == "compile":
        program = out / "model.pcc"
        argv = ["compile", str(path), "-p", profile, "-o", str(program)]
        source = pick(rng, {"calibration": 7, "range": 2, "none": 1})
        argv += ["--calibration", str(data)] if source == "calibration" else \
            ["--input-range", "0,1"] if source == "range" else []
        allowed = (program,)
        if rng.random() < 0.2:
            argv += ["--report", str(out / "report.json")]
            allowed += (out / "report.json",)
        case.plans.append(Plan(argv, allowed))
        case.plans.append(simulate_plan(program, data, out / "sim.npz", path, seed.specs, rng, follow=True))
    elif command == "check":
        case.plans.append(Plan(["check", str(path), "-p", profile]))
    else:
        argv = ["verify", str(path), "--inputs", str(data), "-p", profile, "--trials", "1"]
        reports = ()
        if rng.random() < 0.3:
            argv += ["--json", str(out / "verify.json")]
            reports = (out / "verify.json",)
        case.plans.append(Plan(argv, reports, reports))
