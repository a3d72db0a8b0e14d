"""engine vs runc, side by side: `python bench/run.py --help`."""
