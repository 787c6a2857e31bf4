"""The leaf layer: what every package of the project uses and that imports nothing of the project.

Modules here depend only on the standard library, NumPy, SciPy and PyTorch (never on
``lightning_modules``, ``datamodules``, ``callbacks``, ``evaluation``, ``analysis`` or ``tools``),
so any package may import them without creating an import cycle.
"""
