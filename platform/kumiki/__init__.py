"""kumiki: a self-hosted, kintone-like record app platform."""

__version__ = "0.1.0"
