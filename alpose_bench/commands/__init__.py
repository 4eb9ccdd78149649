"""Click sub-commands of `alpose-bench`, one module each; cli.py assembles them."""
