"""The performance code under the losses, miners and distances.

Each module computes one piece of math fast (sorted row searches instead of [B, B, B]
tensors, known gradients instead of autograd chains, huge-page buffers) and states the same
math as a short plain-torch `reference_*` function, which the tests hold it to. The losses,
miners and distances import from here and never from each other.
"""
