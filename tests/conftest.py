import os

# Lightning's CLI calls jsonargparse APIs that jsonargparse has deprecated; not ours to fix.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
