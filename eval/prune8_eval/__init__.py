"""The accuracy study behind `make eval`: the digits MLP, its int8 quantization, the
accuracy of every scorer and peer against sparsity, iterative magnitude pruning,
SparseGPT, and the same check on a (virtual) board. Not installed: `make eval` runs it
from the checkout (PYTHONPATH=eval), and examples/ and the tests import it the same way."""
