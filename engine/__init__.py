"""engine: an OCI runtime-spec container runtime with a runc-compatible command line."""

__version__ = "0.1.0"
# The runtime-spec version this engine implements and writes into state and `engine spec`.
SPEC_VERSION = "1.3.0"
