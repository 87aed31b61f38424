"""What every layer uses: errors, safe I/O, device, metrics, value checks, logging, the one
resumable-state folder and ONNX Runtime session options."""
