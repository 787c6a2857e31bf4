"""One module per ``python -m analysis`` command; each defines ``add_command(subparsers)``."""
