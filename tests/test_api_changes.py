"""The CI step that holds the public API to the changelog (.ci/api_changes.py), on a package of its own."""

import importlib.util
import pathlib
import subprocess

import pytest

SCRIPT = pathlib.Path(__file__).parent.parent / ".ci" / "api_changes.py"
spec = importlib.util.spec_from_file_location("api_changes", SCRIPT)
api_changes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(api_changes)

RELEASED = "def train(data, epochs=10):\n    pass\n\n\ndef helper():\n    pass\n\n\ndef kept(x):\n    pass\n"
CHANGED = "def train(data):\n    pass\n\n\ndef kept(x, y=1):\n    pass\n"  # a parameter and a function removed


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _released_package(tmp_path):
    repo = tmp_path / "repo"
    (repo / "toy").mkdir(parents=True)
    (repo / "toy" / "__init__.py").write_text(RELEASED)
    (repo / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n## 0.1.0\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "release")
    _git(repo, "tag", "v0.1.0")
    (repo / "toy" / "__init__.py").write_text(CHANGED)
    return repo


def _failing(repo, capsys):
    status = api_changes.main(["--repo", str(repo), "--package", "toy"])
    return status, capsys.readouterr()


def test_a_removal_or_changed_signature_fails_until_the_changelog_names_it_under_breaking(tmp_path, capsys):
    repo = _released_package(tmp_path)
    status, out = _failing(repo, capsys)
    assert status == 1 and "against v0.1.0: 2 breaking change(s)" in out.out  # an added optional one is not
    assert "toy.train" in out.out and "toy.helper" in out.out and "toy.kept" not in out.out
    assert "2 breaking change(s) are not named" in out.err

    # Named elsewhere (an older section, or under "Added") is not named as breaking.
    (repo / "CHANGELOG.md").write_text("## Unreleased\n\n### Added\n- `toy.train`\n\n## 0.1.0\n### Breaking\n"
                                       "- `toy.helper`\n")
    assert _failing(repo, capsys)[0] == 1
    (repo / "CHANGELOG.md").write_text("## Unreleased\n\n### Breaking\n- `toy.train` takes no `epochs`; "
                                       "`toy.helper` is gone.\n\n### Added\n\n## 0.1.0\n")
    status, out = _failing(repo, capsys)
    assert status == 0 and "FAIL" not in out.out


def test_a_repository_without_a_release_tag_is_one_clear_error(tmp_path):
    repo = tmp_path / "untagged"
    repo.mkdir()
    _git(repo, "init", "-q")
    with pytest.raises(SystemExit, match="no release tag"):
        api_changes.last_release_tag(str(repo))
