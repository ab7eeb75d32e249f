"""How every supported ONNX operator is mapped onto the device (``photoncc ops``).

Mappings:
* optical     a matrix product on the photonic banks (non-negative isomorphic form, tiled)
* folded      folded into the neighbouring bank at compile time when it directly follows one;
              otherwise runs electronically
* electronic  runs on the electronic side, after the ADC
* layout      data movement on the electronic side (no arithmetic)
* compile     evaluated at compile time (shape sub-graphs, constants); must not depend on data
* removed     vanishes in inference
"""
from __future__ import annotations

OP_TABLE = (
    ("Gemm", "optical", "all attributes (alpha, beta, transB); transA on data is refused"),
    ("MatMul", "optical", "data @ constant 2-D weight, along the last axis"),
    ("Conv", "optical", "1-D/2-D (and 3-D) conv: stride, pads, auto_pad, dilation, groups, depthwise"),
    ("BatchNormalization", "folded", "into the preceding bank's rows; electronic after Concat etc."),
    ("Add", "folded", "constant bias into the preceding bank; residual adds of activations electronic"),
    ("Sub", "folded", "constant into the preceding bank; otherwise electronic"),
    ("Mul", "folded", "constant scale into the preceding bank; otherwise electronic (DenseNet-style)"),
    ("Div", "folded", "by a constant into the preceding bank; otherwise electronic"),
    ("Sum", "electronic", "residual sums of activations"),
    ("Max", "electronic", "elementwise"), ("Min", "electronic", "elementwise"),
    ("Mean", "electronic", "elementwise"), ("Pow", "electronic", "elementwise"),
    ("Relu", "electronic", ""), ("LeakyRelu", "electronic", ""), ("PRelu", "electronic", ""),
    ("Sigmoid", "electronic", "optical on a photonic_sigmoid profile (exact mapping); bounds the next range to [0, 1]"),
    ("Tanh", "electronic", "optical on a photonic_sigmoid profile (exact mapping); bounds the next range to [-1, 1]"),
    ("Clip", "electronic", "with both limits it bounds the next layer's input range"),
    ("Elu", "electronic", ""), ("Selu", "electronic", ""), ("Softplus", "electronic", ""),
    ("Softsign", "electronic", ""), ("HardSigmoid", "electronic", ""), ("HardSwish", "electronic", ""),
    ("Gelu", "electronic", ""), ("Exp", "electronic", ""), ("Log", "electronic", ""),
    ("Sqrt", "electronic", ""), ("Abs", "electronic", ""), ("Neg", "electronic", ""),
    ("Reciprocal", "electronic", ""), ("Erf", "electronic", ""),
    ("Floor", "electronic", ""), ("Ceil", "electronic", ""), ("Round", "electronic", ""),
    ("Sign", "electronic", ""), ("Where", "electronic", ""), ("Equal", "electronic", ""),
    ("Less", "electronic", ""), ("Greater", "electronic", ""), ("Not", "electronic", ""),
    ("LessOrEqual", "electronic", ""), ("GreaterOrEqual", "electronic", ""), ("And", "electronic", ""),
    ("Or", "electronic", ""),
    ("MaxPool", "electronic", "1-D/2-D/3-D, strides, pads, auto_pad, dilations, ceil_mode"),
    ("AveragePool", "electronic", "count_include_pad, ceil_mode"),
    ("GlobalAveragePool", "electronic", ""), ("GlobalMaxPool", "electronic", ""),
    ("LRN", "electronic", ""), ("Softmax", "electronic", "opset < 13 coerce-to-2-D semantics kept"),
    ("LogSoftmax", "electronic", ""), ("ArgMax", "electronic", ""), ("ArgMin", "electronic", ""),
    ("ReduceMean", "electronic", "not over the batch axis"), ("ReduceSum", "electronic", ""),
    ("ReduceMax", "electronic", ""), ("ReduceMin", "electronic", ""), ("ReduceProd", "electronic", ""),
    ("ReduceL1", "electronic", ""), ("ReduceL2", "electronic", ""), ("ReduceSumSquare", "electronic", ""),
    ("ReduceLogSumExp", "electronic", ""),
    ("Cast", "electronic", "a Cast to the same type is removed"),
    ("Scaler", "electronic", "ai.onnx.ml (skl2onnx StandardScaler)"),
    ("ArrayFeatureExtractor", "electronic", "ai.onnx.ml (skl2onnx class-label lookup)"),
    ("Pad", "layout", "constant, reflect, edge, wrap; not on the batch axis"),
    ("Reshape", "layout", "must keep axis 0 as the batch"), ("Flatten", "layout", "axis >= 1"),
    ("Squeeze", "layout", "not the batch axis"), ("Unsqueeze", "layout", "not the batch axis"),
    ("Transpose", "layout", "must keep axis 0 first"), ("Concat", "layout", "not on the batch axis"),
    ("Split", "layout", "not on the batch axis"), ("Slice", "layout", "not across the batch axis"),
    ("Gather", "layout", "lookups; on shapes at compile time"),
    ("Shape", "compile", ""), ("Size", "compile", ""), ("ConstantOfShape", "compile", ""),
    ("Constant", "compile", ""), ("Range", "compile", ""), ("Expand", "compile", "or electronic"),
    ("Tile", "compile", "or electronic"),
    ("Identity", "removed", "kept only to copy a graph input, or another output, to an output of its own name"), ("Dropout", "removed", "inference: identity"),
)
