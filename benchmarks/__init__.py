"""Scripts that measure the app (not tests): run each as a module from the repository root,
``python -m benchmarks.<name>``."""
