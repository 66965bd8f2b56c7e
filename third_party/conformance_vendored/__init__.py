"""Lines of other projects, vendored verbatim for examples/conformance.py (origins in README.md, licence texts in LICENSE-*)."""
