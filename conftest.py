"""Every Python block of README.md and of the guides in docs/ runs in the test suite.

One test per page: its blocks run in order in one namespace, as a reader runs them, inside a
scratch folder that holds `tv_resnext_tiny.safetensors`. A block that needs the network or hours is preceded by
`<!-- skip: next "why" -->`; the reason is required and shows in the test's report.
"""

import os
import shutil
import tempfile
import unittest

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

PAGES = ("README.md", "docs/*.md", "docs/guides/*.md")
ROOT = os.path.dirname(os.path.abspath(__file__))
# The pages fine-tune "a torchvision checkpoint": the small real one the tests use, not 100 MB.
CHECKPOINT = os.path.join(ROOT, "tests", "fixtures", "tv_resnext_tiny.safetensors")
_SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()], patterns=list(PAGES), path=ROOT)


class PageExamples(pytest.Item):
    def runtest(self):
        import keras_resnext  # noqa: F401 - first, as the pages do: oneDNN is settled before TensorFlow loads
        import keras

        document = _SYBIL.parse(self.path)
        skipped = []
        here = os.getcwd()
        with tempfile.TemporaryDirectory(prefix="keras-resnext-docs-") as scratch:
            shutil.copy(CHECKPOINT, scratch)
            os.chdir(scratch)
            try:
                for example in document:
                    self.example = example
                    try:
                        example.evaluate()
                    except unittest.SkipTest as skip:
                        if not str(skip):
                            raise ValueError(f"line {example.line}: a skipped block must say why") from None
                        skipped.append(f"line {example.line}: {skip}")
            finally:
                os.chdir(here)
                keras.config.set_dtype_policy("float32")
                keras.backend.clear_session()
        self.user_properties.append(("skipped blocks", skipped))
        if skipped:
            self.add_report_section("call", "skipped blocks", "\n".join(skipped))

    def repr_failure(self, excinfo):
        example = getattr(self, "example", None)
        where = f"{self.path.name}, the block at line {example.line}" if example else self.path.name
        return f"{where}:\n{excinfo.getrepr(style='short')}"

    def reportinfo(self):
        return self.path, 0, f"{self.path.relative_to(ROOT)}: every Python block"


class Page(pytest.File):
    def collect(self):
        if not any(True for _ in _SYBIL.parse(self.path)):  # a page with no Python block has no test
            return
        item = PageExamples.from_parent(self, name="examples")
        item.add_marker(pytest.mark.slow)  # end to end: models are built and trained; started early (tests/conftest.py)
        yield item


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".md" and _SYBIL.should_parse(file_path):
        return Page.from_parent(parent, path=file_path)
    return None
