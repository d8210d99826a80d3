"""The fast math under the losses, miners and distances.

Each module computes its math fast (sorted row searches instead of [B, B, B] tensors, known
gradients instead of autograd chains, one [B, B] pass instead of a loop over pairs) and states
the same math beside it as short plain-torch `reference_*` functions, loops where the formula
is one, which its test (tests/test_kernels_<module>.py) holds it to on random inputs and edge
cases, gradients included. Three modules are mechanisms with no math of their own, and no
reference: `huge_pages` (a buffer that is torch.empty's, faulted in differently),
`known_gradient` (a value with a precomputed gradient, tested against the plain function
through autograd) and `native` (compiles a C++ kernel such as `bn_relu_pool.cpp` for the
machine on first use; `bn_relu_pool` holds that kernel's reference).

A kernel takes its tensors, then keyword-only options, and returns terms, or their sum with
the counts a reducer needs; it never reduces (the reduction is the loss's, losses/reducers.py).
Kernels import nothing else from dml_core; losses, miners and distances import from here, and
no loss imports another loss's module.
"""
