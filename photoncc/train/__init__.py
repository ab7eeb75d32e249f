"""Device-aware fine-tuning (``photoncc finetune``): the model's own weights trained through a
model of the device, so that it wins back the accuracy the device costs.

* ``tape``: reverse-mode differentiation of an IR graph from the registry's VJP rules;
* ``model``: the graph trained (the compile's, after ``fold_affine``), its parameters and the way
  back into the ONNX file;
* ``loss``: cross-entropy on labels, or distillation of the original model's outputs;
* ``optim``: the optimisers (Adam, SGD, and the sign-preserving NNSGD and CSGD of the
  non-negative form);
* ``surrogate``: the device in the loop (per optical layer the forward of the profile's
  architecture, ``devices``);
* ``finetune``: the training loop.
"""
