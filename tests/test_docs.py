"""The documentation's own checks that the site build does not make: README's links, and an API page per module.

`make docs` builds the site strictly (a broken link inside docs/ or an unresolved reference is an
error); the root conftest.py runs every Python block of README.md and the guides.
"""

import pathlib
import re
import types

import keras_resnext as kr

ROOT = pathlib.Path(__file__).parent.parent
API = ROOT / "docs" / "api"
# The public modules the API reference documents, each with a `::: keras_resnext.<module>` somewhere.
PUBLIC_MODULES = ("layers", "grouped_conv", "training", "recipes", "color_augmentation", "optimizers", "distribute",
                  "jobs", "data", "evaluation_crop", "folders", "tuning", "flops", "export", "inference", "int8",
                  "weights", "explain", "devices", "config")


def test_every_relative_link_of_the_pages_outside_the_site_leads_to_a_file():
    for page in ("README.md", "CHANGELOG.md", "BENCHMARKS.md", "tuning/README.md", "weights/README.md"):
        text = (ROOT / page).read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (ROOT / page).parent.joinpath(target).exists(), f"{page} links to {target}, which is missing"


def test_the_api_reference_has_every_public_module_and_every_name_of_kr():
    shown = set(re.findall(r"^::: ([\w.]+)\s*$", "\n".join(p.read_text() for p in API.glob("*.md")), re.M))
    for module in PUBLIC_MODULES:
        assert f"keras_resnext.{module}" in shown, f"no API page shows kr.{module}"
    for name in kr.__all__:
        obj = getattr(kr, name)
        if isinstance(obj, types.ModuleType):  # a module is shown whole, or (kr.hub) one object at a time
            assert any(path == obj.__name__ or path.startswith(obj.__name__ + ".") for path in shown), name
        else:  # a function or class: on its own, or with its whole module
            assert {f"{obj.__module__}.{name}", obj.__module__} & shown, f"kr.{name} has no API entry"


def test_the_site_names_the_one_version_string():
    hooks = (ROOT / "docs" / "scripts" / "hooks.py").read_text()
    assert "__version__" in hooks
    assert f"keras_resnext.__version__` ({kr.__version__})" in (ROOT / "README.md").read_text()
    assert f"## {kr.__version__} - " in (ROOT / "CHANGELOG.md").read_text()
