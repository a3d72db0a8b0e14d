"""The lifecycle: state machine, state store, liveness, publishing."""
