"""The embedded AWS stack (moto) for `demo` and `local`: the only modules that import moto."""
