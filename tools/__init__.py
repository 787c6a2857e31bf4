"""``python -m tools <command>``: the project's command lines besides training and analysis.

One module per command (``add_command(subparsers, name, help)`` registers it; ``tools.sweep``
holds what the sweeps share).  ``tools`` is the top layer: it may import every other
package of the project, and nothing imports it.
"""
