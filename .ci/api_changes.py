"""The public API's breaking changes since the last release, found by griffe, must be in the changelog.

The last release is the newest "## X.Y.Z" section of CHANGELOG.md. Its public API was recorded in
`.ci/api/vX.Y.Z.json` when it was tagged (`--record`, `make api-record`), so the check needs neither
the tag nor the history: a clone without tags, or a shallow one, checks the same. `--against REF`
compares with any git ref instead.

Lists every change griffe's `find_breaking_changes` reports (a removal, a changed signature or
default, a changed kind). Each fails the check unless the "Unreleased" section of CHANGELOG.md names
the object's dotted path (for example `keras_resnext.training.sgd`) under "### Breaking".

    python .ci/api_changes.py [--record] [--against REF] [--repo DIR] [--package NAME]
"""

import argparse
import json
import os
import re
import sys

import griffe


def last_release(changelog):
    """The version of the newest release section of the changelog, 'X.Y.Z'."""
    found = re.search(r"^## \[?v?(\d+\.\d+\.\d+[^\]\s]*)", changelog, re.M)
    if not found:
        raise SystemExit("api_changes: CHANGELOG.md has no release section ('## X.Y.Z - date') to compare with.")
    return found.group(1)


def record_path(repo, version):
    return os.path.join(repo, ".ci", "api", f"v{version}.json")


def _portable(data, repo):
    # Docstrings are not part of the API's compatibility, and are most of the record's size; file paths
    # are kept relative to the repository, which a clone elsewhere has too.
    if isinstance(data, list):
        return [_portable(item, repo) for item in data]
    if not isinstance(data, dict):
        return data
    kept = {key: _portable(value, repo) for key, value in data.items() if key != "docstring"}
    if isinstance(kept.get("filepath"), str):
        kept["filepath"] = os.path.relpath(kept["filepath"], repo)
    return kept


def record(repo, package, version):
    """Writes the working tree's public API as release `version`'s record."""
    # The package's atomic write (fsync, the umask's mode): only recording a release pays its import.
    from keras_resnext import files

    api = griffe.load(package, search_paths=[repo])
    data = _portable(json.loads(json.dumps(api, cls=griffe.JSONEncoder, full=False)), repo)
    path = record_path(repo, version)
    files.write_bytes(path, json.dumps(data, indent=0, sort_keys=True).encode("utf-8"))
    return path


def recorded(repo, version):
    """Release `version`'s public API, as griffe objects, from its record."""
    path = record_path(repo, version)
    if not os.path.exists(path):
        raise SystemExit(f"api_changes: CHANGELOG.md's newest release is {version}, but its API was not recorded "
                         f"({os.path.relpath(path, repo)} is missing): run `make api-record` when tagging a release.")
    with open(path, encoding="utf-8") as f:
        api = json.load(f, object_hook=griffe.json_decoder)
    modules = griffe.ModulesCollection()  # aliases between the package's modules resolve through it
    modules.set_member(api.path, api)
    api._modules_collection = modules
    return api


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


def check(old, new, changelog, against):
    breakages = list(griffe.find_breaking_changes(old, new))
    failing = unnamed(breakages, named_as_breaking(changelog))
    print(f"Public API of {new.path} against {against}: {len(breakages)} breaking change(s).")
    for b in breakages:
        verdict = "FAIL, not in CHANGELOG.md's Breaking" if b in failing else "ok"
        print(f"  {b.obj.path}: {b.explain(griffe.ExplanationStyle.ONE_LINE).strip()} [{verdict}]")
    return failing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--package", default="keras_resnext")
    parser.add_argument("--against", help="a git ref (default: the last release's recorded API)")
    parser.add_argument("--record", action="store_true",
                        help="record the working tree's API as the newest release of CHANGELOG.md")
    args = parser.parse_args(argv)
    with open(os.path.join(args.repo, "CHANGELOG.md"), encoding="utf-8") as f:
        changelog = f.read()
    version = last_release(changelog)
    if args.record:
        print(f"Recorded the public API of {args.package} {version} in {record(args.repo, args.package, version)}.")
        return 0
    if args.against:
        old, against = griffe.load_git(args.package, ref=args.against, repo=args.repo), args.against
    else:
        old, against = recorded(args.repo, version), f"v{version} (recorded)"
    failing = check(old, griffe.load(args.package, search_paths=[args.repo]), changelog, against)
    if failing:
        print(f"{len(failing)} breaking change(s) are not named under '### Breaking' in the Unreleased section "
              "of CHANGELOG.md.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
