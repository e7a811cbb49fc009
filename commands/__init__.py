"""The `eiad` command (`main.py`) and `eiad demo` (`demo.py`): the entry points that
reach every stage (data, train, eval, export, edge, bench), kept out of the core so
that `eiad/` depends on none of them."""
