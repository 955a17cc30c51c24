"""The commands of ``python -m aiov``, one module each."""
