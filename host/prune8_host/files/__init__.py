"""Files: models (.tflite, .npz, .npy) that remember their source, masks files, packed
(sparse) models, the board's store records, the example model, and .npy / .npz input
and output."""
