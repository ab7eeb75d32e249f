"""The operator registry: every operator photoncc knows, declared once with every fact about it.

Each op is declared next to its NumPy function (``@op`` in the modules of this package, grouped by
kind: ``elementwise``, ``functions``, ``special``, ``nn``, ``products``, ``conv_transpose``,
``photonic``, ``normalization``, ``pool``, ``layout``, ``shapes``, ``indexing``, ``reduce``,
``resample``, ``quantize``, ``compile_time``, ``ml``, ``recurrent``). What the
compiler, the interpreter, the simulator, the compile report and ``photoncc ops`` need is a field
of its ``Op``, and every table they used to keep is a query below:

* ``placement``: where it runs (``optical``: a matrix product on the banks or a photonic
  activation; ``folded``: into the neighbouring bank when it follows one, else electronic;
  ``electronic``: after the ADC; ``layout``: data movement; ``compile``: evaluated at compile time,
  never in a program; ``removed``: vanishes in inference);
* ``kernel(*inputs, **attrs)``: the op in the canonical form a device program carries (every
  setting an attribute, axis 0 the batch, ``Reshape`` per sample); None for an op that never
  reaches a program. The simulator runs it; so does the interpreter, unless ``onnx`` is given;
* ``onnx(node, *inputs)``: the op as ONNX files write it (settings as inputs, defaults...), for the
  interpreter before ``canonicalize``;
* ``settings``: the names of the ONNX inputs after the data input that are settings, which
  ``canonicalize`` moves into attributes;
* ``canonical(node, graph)``: the node in canonical form, or annotated ``unsupported`` (with a
  reason and a hint) where it would mix the samples of a batch (``canonicalize``);
* ``bounds(attrs)``: the interval (lo, hi) every output value lies in whatever the input (Sigmoid:
  [0, 1]), or None; ``interval(node, lows, highs)``: the output's bounds from its inputs' (a
  non-decreasing op evaluated on both ends, interval arithmetic...), or None (``ranges``);
* ``activation``: listed among the activations of the compile report;
* ``in_place(*inputs)``: the op computed in its first input's memory (the simulator uses it on a
  value that nothing reads afterwards);
* ``vjp(node, inputs, outputs, cotangents)``: the reverse-mode rule of fine-tuning (the JAX /
  autograd shape): given the node, its input and output values and the cotangents of its outputs
  (None for an output nothing downstream differentiates), the cotangents of its inputs, one per
  input (None for an input that is not differentiable: a setting, an integer tensor, an absent
  optional input). A rule's ``saves`` attribute (``saves(...)``) says which of the inputs and
  outputs it reads, so that the tape (``photoncc.train.tape``) keeps those alone; an op without
  a rule cannot be fine-tuned (tests/test_vjp.py checks every rule against finite differences);
* ``note``: what ``photoncc ops`` says of it; ``onnx_op``: False for the IR's own ops (``Linear``,
  ``Bank``, ``PhotonicSigmoid``), which no ONNX file may use; ``domain``: its ONNX domain.

Adding an operator means adding one declaration in one of these modules (and its test).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

PLACEMENTS = ("optical", "folded", "electronic", "layout", "compile", "removed")
DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


@dataclass(frozen=True)
class Op:
    name: str
    placement: str
    kernel: Callable | None = None
    onnx: Callable | None = None
    settings: tuple[str, ...] = ()
    canonical: Callable | None = None
    bounds: Callable | None = None
    interval: Callable | None = None
    activation: bool = False
    in_place: Callable | None = None
    vjp: Callable | None = None
    note: str = ""
    onnx_op: bool = True
    domain: str = ""

    def evaluate(self, node, *inputs):
        """The op on ``node``'s inputs, as the interpreter runs it at any stage of the pipeline."""
        if self.onnx is not None:
            return self.onnx(node, *inputs)
        return self.kernel(*[x for x in inputs if x is not None], **node.attrs)


REGISTRY: dict[str, Op] = {}

# operators photoncc refuses, with what the user can do instead (they have no Op)
REFUSED = {
    "ZipMap": "skl2onnx adds ZipMap for the probabilities; convert with options={id(model): {'zipmap': False}}",
    "Attention": "attention's products of two activations are not fused yet; export attention unfused "
                 "(opset < 23: MatMul, Softmax)",
    "RotaryEmbedding": "export rotary embeddings unfused (opset < 23: Slice, Mul, Add, Concat)",
    "EyeLike": "an identity matrix shaped like a data value; export it as a constant",
    "DynamicQuantizeLinear": "its scale is computed over the whole tensor, across the batch; quantise with "
                             "constant scales (QuantizeLinear)",
    "BitCast": "reinterpreting the bits of a value is not supported",
    "ImageDecoder": "decode images outside the model",
    **dict.fromkeys(("If", "Loop", "Scan", "SequenceMap"),
                    "control flow (sub-graphs) is not supported; export a static graph (tracing unrolls loops)"),
    **dict.fromkeys(("ConcatFromSequence", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
                     "SequenceInsert", "SequenceLength", "SplitToSequence", "Optional", "OptionalGetElement",
                     "OptionalHasElement"), "sequences and optionals are not tensors; export without them"),
    **dict.fromkeys(("StringConcat", "StringNormalizer", "StringSplit", "RegexFullMatch", "TfIdfVectorizer",
                     "LabelEncoder", "CategoryMapper", "CastMap", "DictVectorizer"),
                    "strings and maps: preprocess them outside the model"),
    **dict.fromkeys(("Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
                     "RandomUniformLike"), "random sampling has no place in a deployed (inference) model"),
    **dict.fromkeys(("NonZero", "Unique", "NonMaxSuppression"),
                    "the output's shape depends on the data values; photoncc needs static shapes"),
    **dict.fromkeys(("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"),
                    "a training loss; export the inference graph"),
    **dict.fromkeys(("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"),
                    "integer products: export the quantised model in the QDQ format (QuantizeLinear and "
                    "DequantizeLinear around float operators), which photoncc runs"),
    **dict.fromkeys(("DFT", "STFT", "HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix"),
                    "signal processing: compute the features outside the model"),
    **dict.fromkeys(("SVMClassifier", "SVMRegressor", "TreeEnsemble", "TreeEnsembleClassifier",
                     "TreeEnsembleRegressor", "Imputer", "OneHotEncoder", "FeatureVectorizer"),
                    "a classic-ML operator; photoncc compiles neural networks (matrix products)"),
}


def op(name: str, placement: str, **facts) -> Callable:
    """Declare operator ``name`` with the decorated function as its kernel (see the module
    docstring for the facts); returns the function unchanged."""
    def declare(kernel):
        register(name, placement, kernel=kernel, **facts)
        return kernel
    return declare


def register(name: str, placement: str, **facts) -> Op:
    assert placement in PLACEMENTS and name not in REGISTRY, name
    REGISTRY[name] = Op(name, placement, **facts)
    return REGISTRY[name]


def get(name: str) -> Op | None:
    return REGISTRY.get(name)


def differentiable() -> list[str]:
    """The ops with a VJP rule (the ones fine-tuning can run backwards through), by name."""
    return sorted(name for name, o in REGISTRY.items() if o.vjp is not None)


def kernels() -> dict[str, Callable]:
    """op name -> kernel, for every op a device program may hold."""
    return {name: o.kernel for name, o in REGISTRY.items() if o.kernel is not None}


def accepts(name: str, domain: str) -> bool:
    """Whether an ONNX node of this op type and domain has a mapping."""
    found = REGISTRY.get(name)
    return found is not None and found.onnx_op and (domain or "") in (("", "ai.onnx") if not found.domain
                                                                      else (found.domain,))


def table() -> list[Op]:
    """The ONNX operators by placement (in PLACEMENTS order), then name, for ``photoncc ops``."""
    listed = [o for o in REGISTRY.values() if o.onnx_op]
    return sorted(listed, key=lambda o: (PLACEMENTS.index(o.placement), o.name))


# setting inputs that hold one number, and those that hold floats; every other one holds integers
SCALAR_SETTINGS = ("min", "max", "value", "axis", "k", "K", "depth")
FLOAT_SETTINGS = ("scales", "roi", "values")


def settings(node, args) -> dict:
    """The node's attributes updated with the values of its setting inputs (``Op.settings``)."""
    a = dict(node.attrs)
    found = REGISTRY.get(node.op)
    for key, value in zip(found.settings if found else (), args):
        if value is None:
            continue
        if key in SCALAR_SETTINGS:
            a[key] = value.item()
        elif key in FLOAT_SETTINGS:
            a[key] = [float(v) for v in value.reshape(-1)]
        else:
            a[key] = [int(v) for v in value.reshape(-1)]
    return a


# ------------------------------------------------------------------------ rules shared by many ops

def unsupported(node, reason: str, hint: str = ""):
    """``node`` annotated as one the pipeline reports (``compiler.stage_problems``)."""
    return node.replace(attrs={**node.attrs, "unsupported": (reason, hint)})


BATCH_HINT = "photoncc keeps axis 0 as the batch; export the model with a batch axis it does not mix"


def saves(*which: str) -> Callable:
    """Mark a VJP rule with what it reads of the forward pass: ``"inputs"``, ``"outputs"`` or
    both (the default of an unmarked rule); the tape frees the rest as soon as it can."""
    assert set(which) <= {"inputs", "outputs"}, which

    def mark(rule):
        rule.saves = frozenset(which)
        return rule
    return mark


def unbroadcast(g, shape):
    """The cotangent ``g`` of a broadcast result summed back to an operand of ``shape``: over the
    leading axes broadcasting added and over the axes it stretched from 1 (the adjoint of
    NumPy's broadcasting)."""
    import numpy as np
    shape = tuple(shape)
    g = np.asarray(g)
    if g.shape == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    stretched = tuple(i for i, (have, want) in enumerate(zip(g.shape, shape)) if want == 1 and have != 1)
    return (g.sum(axis=stretched, keepdims=True) if stretched else g).reshape(shape)


def fixed_bounds(lo: float, hi: float) -> Callable:
    """``Op.bounds`` of an op whose outputs always lie in [lo, hi]."""
    return lambda attrs: (lo, hi)


def monotone(node, lows, highs):
    """``Op.interval`` of an op that is non-decreasing in every data input: the op evaluated on
    the inputs' lower and upper bounds (a negative ``alpha``, as LeakyRelu and Elu may have,
    makes it decreasing)."""
    if node.attrs.get("alpha", 0.0) < 0:
        return None
    found = REGISTRY[node.op]
    return found.evaluate(node, *lows), found.evaluate(node, *highs)


from . import compile_time, conv_transpose, elementwise, functions, indexing, layout, nn  # noqa: E402,F401  (they declare the ops)
from . import normalization, photonic, pool, products, quantize, reduce, resample, shapes, special  # noqa: E402,F401
from . import ml, recurrent  # noqa: E402,F401  (classic-ML linear models; recurrent layers)
