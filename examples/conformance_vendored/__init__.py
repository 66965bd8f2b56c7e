"""Lines of other projects, vendored verbatim for examples/conformance.py (see LICENSES.md)."""
