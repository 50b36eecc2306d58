"""The CI step that holds the public API to the changelog (.ci/api_changes.py), on a package of its own."""

import importlib.util
import os
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
    """A toy package released as 0.1.0 (its API recorded and tagged), then changed."""
    repo = tmp_path / "repo"
    (repo / "toy").mkdir(parents=True)
    (repo / "toy" / "__init__.py").write_text(RELEASED)
    (repo / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n## 0.1.0 - 2026-12-01\n")
    assert api_changes.main(["--repo", str(repo), "--package", "toy", "--record"]) == 0
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "release")
    _git(repo, "tag", "v0.1.0")
    (repo / "toy" / "__init__.py").write_text(CHANGED)
    return repo


def _failing(repo, capsys, *args):
    status = api_changes.main(["--repo", str(repo), "--package", "toy", *args])
    return status, capsys.readouterr()


def test_a_removal_or_changed_signature_fails_until_the_changelog_names_it_under_breaking(tmp_path, capsys):
    repo = _released_package(tmp_path)
    status, out = _failing(repo, capsys)
    assert status == 1 and "against v0.1.0 (recorded): 2 breaking change(s)" in out.out  # an added optional one is not
    assert "toy.train" in out.out and "toy.helper" in out.out and "toy.kept" not in out.out
    assert "2 breaking change(s) are not named" in out.err

    # Named elsewhere (an older section, or under "Added") is not named as breaking.
    (repo / "CHANGELOG.md").write_text("## Unreleased\n\n### Added\n- `toy.train`\n\n"
                                       "## 0.1.0 - 2026-12-01\n### Breaking\n- `toy.helper`\n")
    assert _failing(repo, capsys)[0] == 1
    (repo / "CHANGELOG.md").write_text("## Unreleased\n\n### Breaking\n- `toy.train` takes no `epochs`; "
                                       "`toy.helper` is gone.\n\n### Added\n\n## 0.1.0 - 2026-12-01\n")
    status, out = _failing(repo, capsys)
    assert status == 0 and "FAIL" not in out.out


def test_a_clone_without_tags_or_history_checks_against_the_recorded_release(tmp_path, capsys):
    repo = _released_package(tmp_path)
    (repo / ".git").rename(tmp_path / "away")  # CI's clean clone may have no tags; a shallow one no history
    status, out = _failing(repo, capsys)
    assert status == 1 and "against v0.1.0 (recorded): 2 breaking change(s)" in out.out
    assert oct((repo / ".ci" / "api" / "v0.1.0.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_a_git_ref_is_compared_the_same_way_as_the_record(tmp_path, capsys):
    repo = _released_package(tmp_path)
    status, out = _failing(repo, capsys, "--against", "v0.1.0")
    assert status == 1 and "against v0.1.0: 2 breaking change(s)" in out.out
    assert "toy.train" in out.out and "toy.helper" in out.out


def test_a_release_whose_api_was_not_recorded_is_one_clear_error(tmp_path):
    repo = _released_package(tmp_path)
    (repo / "CHANGELOG.md").write_text("## Unreleased\n\n## 0.2.0 - 2026-12-24\n\n## 0.1.0 - 2026-12-01\n")
    with pytest.raises(SystemExit, match=r"newest release is 0\.2\.0, but its API was not recorded.*make api-record"):
        api_changes.main(["--repo", str(repo), "--package", "toy"])
    (repo / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n")
    with pytest.raises(SystemExit, match="no release section"):
        api_changes.main(["--repo", str(repo), "--package", "toy"])


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
