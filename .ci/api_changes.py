"""The public API's breaking changes since the last release tag, found by griffe, must be in the changelog.

Lists every change griffe's `find_breaking_changes` reports between the tag (default: the newest
`v*` tag) and the working tree (a removal, a changed signature or default, a changed kind). Each
fails the check unless the "Unreleased" section of CHANGELOG.md names the object's dotted path
(for example `keras_resnext.training.sgd`) under "### Breaking".

    python .ci/api_changes.py [--against TAG] [--repo DIR] [--package NAME]
"""

import argparse
import os
import re
import subprocess
import sys

import griffe


def last_release_tag(repo):
    result = subprocess.run(["git", "-C", repo, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"api_changes: no release tag (v<version>) in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


def named_as_breaking(changelog):
    """The text under "### Breaking" in the changelog's "Unreleased" section ('' if there is none)."""
    unreleased = re.search(r"^## \[?Unreleased\]?[^\n]*\n(.*?)(?=^## |\Z)", changelog, re.M | re.S)
    if not unreleased:
        return ""
    breaking = re.search(r"^### Breaking[^\n]*\n(.*?)(?=^### |\Z)", unreleased.group(1), re.M | re.S)
    return breaking.group(1) if breaking else ""


def unnamed(breakages, named):
    """The breakages whose object's dotted path `named` does not mention."""
    return [b for b in breakages if not re.search(rf"(?<![\w.]){re.escape(b.obj.path)}(?!\w)", named)]


def check(repo, package, against):
    old = griffe.load_git(package, ref=against, repo=repo)
    new = griffe.load(package, search_paths=[repo])
    breakages = list(griffe.find_breaking_changes(old, new))
    with open(os.path.join(repo, "CHANGELOG.md"), encoding="utf-8") as f:
        failing = unnamed(breakages, named_as_breaking(f.read()))
    print(f"Public API of {package} against {against}: {len(breakages)} breaking change(s).")
    for b in breakages:
        verdict = "FAIL, not in CHANGELOG.md's Breaking" if b in failing else "ok"
        print(f"  {b.obj.path}: {b.explain(griffe.ExplanationStyle.ONE_LINE).strip()} [{verdict}]")
    return failing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--package", default="keras_resnext")
    parser.add_argument("--against", help="a git ref (default: the newest v* tag)")
    args = parser.parse_args(argv)
    failing = check(args.repo, args.package, args.against or last_release_tag(args.repo))
    if failing:
        print(f"{len(failing)} breaking change(s) are not named under '### Breaking' in the Unreleased section "
              "of CHANGELOG.md.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
