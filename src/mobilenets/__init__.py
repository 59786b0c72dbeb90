"""mobilenets: from folders of pictures to a small, fast, verified MobileNet.

    import mobilenets
    spec = mobilenets.parse_spec("v1-0.50-160")
    model = mobilenets.build_model(spec, classes=5, weights="imagenet", head="new")
    print(mobilenets.profile(model).macs)

The Python API mirrors the CLI; heavy modules (TensorFlow) load on first use.
"""

__version__ = "0.1.0"

from mobilenets.errors import MobilenetsError, SpecError
from mobilenets.specs import ModelSpec, parse_spec


def build_model(*args, **kwargs):
    from mobilenets.models import build_model as _build

    return _build(*args, **kwargs)


def profile(*args, **kwargs):
    from mobilenets.profile import profile as _profile

    return _profile(*args, **kwargs)


def list_variants(*args, **kwargs):
    from mobilenets.zoo import list_variants as _list

    return _list(*args, **kwargs)


build_model.__doc__ = "Build a MobileNet; see `mobilenets.models.build_model`."
profile.__doc__ = "Profile a spec, model or file; see `mobilenets.profile.profile`."
list_variants.__doc__ = "Registry variants; see `mobilenets.zoo.list_variants`."

__all__ = ["MobilenetsError", "SpecError", "ModelSpec", "parse_spec", "build_model",
           "profile", "list_variants", "__version__"]
