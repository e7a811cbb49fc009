"""TensorRT engines built on the edge box from vision.onnx (`build.py`) and their check
against ONNX Runtime (`parity.py`)."""
