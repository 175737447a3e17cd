"""What the tests share and no test module owns: tiny models, pictures, checkpoint layouts, the fake camera, the
hostile-file corpora, the browser's settings and the launched app. Benchmarks import them too (``python -m
benchmarks.<name>`` from the repository root); test modules never import one another."""
