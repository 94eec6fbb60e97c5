"""Files: model files, masks files, packed (sparse) models, golden vectors, the board's
store records, and .npy / .npz input and output."""
