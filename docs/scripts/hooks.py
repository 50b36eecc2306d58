"""MkDocs hooks: the release in the site's name, and the command-line reference from the parser."""

import argparse
import os
import re

CLI_MARKER = "<!-- cli-reference -->"


def release():
    """The one version string, read from the package's source (importing it would load TensorFlow)."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "keras_resnext", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def on_config(config):
    config["site_name"] = f"keras-resnext {release()}"
    return config


def on_page_markdown(markdown, page, config, files):
    if CLI_MARKER not in markdown:
        return markdown
    return markdown.replace(CLI_MARKER, cli_reference())


def cli_reference():
    """Each command's `--help`, as argparse prints it, under a heading of its own."""
    os.environ["COLUMNS"] = "96"  # argparse wraps at the terminal's width; a page has none
    from keras_resnext import cli

    parser = cli.make_parser()
    sections = ["## keras-resnext", "", "```text", parser.format_help().rstrip(), "```", ""]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        sections += [f"## keras-resnext {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(sections)
