"""mobilenets: from folders of pictures to a small, fast, verified MobileNet.

    import mobilenets as mn
    run = mn.retrain("photos/", arch="v2-0.35-160", fine_tune=30)
    files = run.export(quantize=["none", "int8"])
    mn.load(files["model_int8.tflite"]).predict("cat.jpg", top_k=3)
    print(mn.profile(mn.parse_spec("v1-0.50-160")).macs)

The Python API mirrors the CLI (`mobilenets.api`: keywords are the commands' flags);
heavy modules (TensorFlow) load on first use.

`mobilenets.train`, `mobilenets.compare` and `mobilenets.profile` are modules and also
calls of the same names: `mn.train("digits", epochs=1)` calls `mobilenets.api.train`,
while `from mobilenets.train import TrainConfig` and `mobilenets.train.run_training` stay
the module's. A function of that name here would not last: importing the submodule binds
it over the function. So each of these module objects is made callable when it is bound.
"""

__version__ = "0.1.0"

import sys as _sys
import types as _types

from mobilenets.env import set_reporter
from mobilenets.errors import MobilenetsError, SpecError
from mobilenets.specs import ModelSpec, parse_spec

# Submodule -> (module, function) that calling it runs.
_CALLABLE_MODULES = {"train": ("mobilenets.api", "train"), "compare": ("mobilenets.api", "compare"),
                     "profile": ("mobilenets.profile", "profile")}
# Names of `mobilenets.api` served here, imported on first use (it imports numpy).
_API = ("retrain", "load", "Run", "Classifier")


class _CallableModule(_types.ModuleType):
    """A module that is also a call: `mobilenets.train(...)` is `mobilenets.api.train(...)`."""

    def __call__(self, *args, **kwargs):
        import importlib

        module, function = _CALLABLE_MODULES[self.__name__.rsplit(".", 1)[-1]]
        return getattr(importlib.import_module(module), function)(*args, **kwargs)


class _Package(_types.ModuleType):
    def __setattr__(self, name, value):
        # The import system binds every submodule here once it is loaded, however it was imported.
        if name in _CALLABLE_MODULES and type(value) is _types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name):
    import importlib

    if name in _CALLABLE_MODULES:  # not imported yet: importing binds it, callable
        return importlib.import_module(f"{__name__}.{name}")
    if name in _API:
        return getattr(importlib.import_module(f"{__name__}.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_model(*args, **kwargs):
    from mobilenets.models import build_model as _build

    return _build(*args, **kwargs)


def list_variants(*args, **kwargs):
    from mobilenets.zoo import list_variants as _list

    return _list(*args, **kwargs)


build_model.__doc__ = "Build a MobileNet; see `mobilenets.models.build_model`."
list_variants.__doc__ = "Registry variants; see `mobilenets.zoo.list_variants`."

__all__ = ["MobilenetsError", "SpecError", "ModelSpec", "parse_spec", "build_model",
           "profile", "list_variants", "retrain", "train", "Run", "load", "Classifier", "compare",
           "set_reporter", "__version__"]
