"""authentik's generated client, loaded as the tests use it. Its package imports all of its 931
models (pydantic classes, each built on import) and every API class: 13.5 s of CPU before the
first test, a fifth of the Python suites' time in `make test`. Here the packages
`authentik_client`, `.models` and `.api` are entered without running their `__init__`, so a
module loads when it is imported: the two API classes the tests use and the models they reach,
about 190 (2 s). The client's own code is unchanged; the one thing its `__init__` provided that
it relies on, finding a model class by name on `authentik_client.models` (its deserializer does
`getattr(authentik_client.models, "AgentConfig")`), is answered from the package's own list of
`from authentik_client.models.<module> import <Class>` lines."""
import importlib
import importlib.util
import os
import re
import sys
import types

_spec = importlib.util.find_spec("authentik_client")
assert _spec and _spec.submodule_search_locations, "authentik-client is not installed (scripts/venv.sh)"
_root = _spec.submodule_search_locations[0]
with open(os.path.join(_root, "models", "__init__.py"), encoding="utf-8") as _f:
    _MODULE_OF = {
        cls: module
        for module, cls in re.findall(
            r"^from authentik_client\.models\.(\w+) import (\w+)$", _f.read(), re.M
        )
    }
assert len(_MODULE_OF) > 900, "authentik_client.models lists its models as expected"


def _package(name, path):
    module = types.ModuleType(name)
    module.__path__ = [path]
    module.__file__ = os.path.join(path, "__init__.py")
    sys.modules[name] = module
    return module


def _model(name):
    """`authentik_client.models.<Class>`: the class, from its own module."""
    if name in _MODULE_OF:
        module = importlib.import_module(f"authentik_client.models.{_MODULE_OF[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'authentik_client.models' has no attribute {name!r}")


if "authentik_client" not in sys.modules:
    _client = _package("authentik_client", _root)
    _models = _package("authentik_client.models", os.path.join(_root, "models"))
    _models.__getattr__ = _model
    _client.models = _models
    _client.api = _package("authentik_client.api", os.path.join(_root, "api"))
