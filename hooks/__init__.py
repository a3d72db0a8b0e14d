"""OCI lifecycle hooks: running them by the spec, hooks.d drop-ins, and the hook scripts engine ships."""
