"""Shell completion scripts for bash, zsh and fish, generated from the argparse parser itself.

Generated rather than written by hand so that a new subcommand, flag or choice completes the day it is
added: ``churnwatch completion SHELL`` walks :func:`apps.cli.build_parser` and prints a script that
completes the subcommands, each subcommand's flags (with their help as descriptions in zsh and fish),
the values of flags and positionals with fixed choices (``--log-level``, ``topics create|check``),
and file names for flags that take a path.

The three scripts are plain text built from the parser; the tests run each shell on them
(``bash -n``, ``zsh -n``, ``fish -n``) and ask bash and fish for real completions.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import Iterable

SHELLS = ("bash", "zsh", "fish")


@dataclass
class Option:
    """One flag of a command."""

    names: list[str]
    help: str
    takes_value: bool
    choices: list[str] = field(default_factory=list)
    path: bool = False


@dataclass
class Command:
    """A subcommand: its flags and the choices of its positionals."""

    name: str
    help: str
    options: list[Option]
    positional_choices: list[str]


def _short(text: str | None) -> str:
    """A one-line description: the help up to its first parenthesis or semicolon, at most 70 characters."""
    text = " ".join((text or "").replace("%%", "%").split())
    text = re.split(r" \(|; ", text, maxsplit=1)[0]
    return text if len(text) <= 70 else text[:67].rstrip() + "..."


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError("the parser has no subcommands")


def describe(parser: argparse.ArgumentParser, path_dests: Iterable[str] = ()) -> tuple[list[Option], list[Command]]:
    """(top-level flags, subcommands) of ``parser``; flags whose ``dest`` is in ``path_dests`` take a path."""
    paths = set(path_dests)

    def options(p: argparse.ArgumentParser) -> list[Option]:
        out = []
        for action in p._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            out.append(Option(list(action.option_strings), _short(action.help), action.nargs != 0,
                              [str(c) for c in action.choices] if action.choices else [], action.dest in paths))
        return out

    sub = _subparsers(parser)
    helps = {a.dest: a.help for a in sub._choices_actions}
    commands = []
    for name, p in sub.choices.items():
        choices = [str(c) for a in p._actions if not a.option_strings and a.choices for c in a.choices]
        commands.append(Command(name, _short(helps.get(name)), options(p), choices))
    return options(parser), commands


# ---- bash ---------------------------------------------------------------------------------------
def bash(prog: str, top: list[Option], commands: list[Command]) -> str:
    fn = "_" + re.sub(r"\W", "_", prog)
    lines = [
        f"# {prog} completion for bash. Load it in this shell:  source <({prog} completion bash)",
        f"# or for every new shell:  {prog} completion bash > ~/.local/share/bash-completion/completions/{prog}",
        f"{fn}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
        "            -*) ;;",
        '            *) cmd="${COMP_WORDS[i]}"; break ;;',
        "        esac",
        "    done",
        '    if [[ -z "$cmd" ]]; then',
        f'        COMPREPLY=($(compgen -W "{" ".join([c.name for c in commands] + [n for o in top for n in o.names])}" -- "$cur"))',
        "        return",
        "    fi",
        '    case "$cmd" in',
    ]
    for c in commands:
        lines.append(f"        {c.name})")
        with_choices = [o for o in c.options if o.takes_value and o.choices]
        plain_values = [o for o in c.options if o.takes_value and not o.choices]
        if with_choices or plain_values:
            lines.append('            case "$prev" in')
            for o in with_choices:
                lines.append(f'                {"|".join(o.names)}) COMPREPLY=($(compgen -W "{" ".join(o.choices)}" -- "$cur")); return ;;')
            if plain_values:  # a value: file names (complete -o default) or nothing to offer
                lines.append(f'                {"|".join(n for o in plain_values for n in o.names)}) return ;;')
            lines.append("            esac")
        words = [n for o in c.options for n in o.names] + c.positional_choices
        lines.append(f'            COMPREPLY=($(compgen -W "{" ".join(words)}" -- "$cur"))')
        lines.append("            ;;")
    lines += ["    esac", "}", f"complete -o default -F {fn} {prog}", ""]
    return "\n".join(lines)


# ---- zsh ----------------------------------------------------------------------------------------
def _zq(text: str) -> str:
    """Inside single quotes, and safe inside a zsh ``_arguments`` description ``[...]``."""
    text = text.replace("[", "(").replace("]", ")").replace(":", "\\:")
    return text.replace("'", "'\\''")


def _zsh_spec(o: Option, exclusion: str | None = None) -> list[str]:
    """``_arguments`` specs of a flag; ``exclusion`` (e.g. ``(- *)``: nothing else after it) replaces the
    default one of a flag with several names (the names exclude each other)."""
    desc = _zq(o.help)
    if not o.takes_value:
        action = ""
    elif o.choices:
        action = f":{o.names[-1].lstrip('-')}:({' '.join(o.choices)})"
    elif o.path:
        action = f":{o.names[-1].lstrip('-')}:_files"
    else:
        action = f":{o.names[-1].lstrip('-')}: "
    if exclusion is None and len(o.names) > 1:
        exclusion = f"({' '.join(o.names)})"
    prefix = f"'{exclusion}'" if exclusion else ""
    if len(o.names) > 1:
        return [f"{prefix}{{{','.join(o.names)}}}'[{desc}]{action}'"]
    return [f"{prefix}'{o.names[0]}[{desc}]{action}'"]


def zsh(prog: str, top: list[Option], commands: list[Command]) -> str:
    fn = "_" + re.sub(r"\W", "_", prog)
    lines = [
        f"#compdef {prog}",
        f"# {prog} completion for zsh. Load it in this shell:  source <({prog} completion zsh)",
        f"# or for every new shell, into a directory of $fpath:  {prog} completion zsh > \"${{fpath[1]}}/{fn}\"",
        f"{fn}() {{",
        "    local context state state_descr line",
        "    typeset -A opt_args",
        "    local -a commands",
        "    commands=(",
    ]
    lines += [f"        '{c.name}:{_zq(c.help)}'" for c in commands]
    lines += ["    )", "    _arguments -C \\"]
    for o in top:
        for spec in _zsh_spec(o, exclusion="(- *)"):
            lines.append(f"        {spec} \\")
    lines += ["        '1:command:->command' \\", "        '*::argument:->argument'",
              "    case $state in",
              f"        command) _describe -t commands '{prog} command' commands ;;",
              "        argument)",
              "            case $words[1] in"]
    for c in commands:
        specs = [s for o in c.options for s in _zsh_spec(o)]
        if c.positional_choices:
            specs.append(f"'1:{c.name} argument:({' '.join(c.positional_choices)})'")
        lines.append(f"                {c.name})")
        lines.append("                    _arguments " + " ".join(specs) + " ;;")
    lines += ["            esac ;;", "    esac", "}",
              f'if [[ "$funcstack[1]" = "{fn}" ]]; then {fn} "$@"; else compdef {fn} {prog}; fi', ""]
    return "\n".join(lines)


# ---- fish ---------------------------------------------------------------------------------------
def _fq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(prog: str, condition: str, o: Option) -> str:
    parts = [f"complete -c {prog} -n {_fq(condition)}"]
    for name in o.names:
        parts.append(f"-l {name[2:]}" if name.startswith("--") else f"-s {name[1:]}")
    if o.takes_value:
        if o.choices:
            parts.append(f"-x -a {_fq(' '.join(o.choices))}")
        elif o.path:
            parts.append("-r -F")
        else:
            parts.append("-x")
    parts.append(f"-d {_fq(o.help)}")
    return " ".join(parts)


def fish(prog: str, top: list[Option], commands: list[Command]) -> str:
    names = " ".join(c.name for c in commands)
    lines = [f"# {prog} completion for fish. Load it in this shell:  {prog} completion fish | source",
             f"# or for every new shell:  {prog} completion fish > ~/.config/fish/completions/{prog}.fish",
             f"complete -c {prog} -f"]
    lines += [_fish_option(prog, "__fish_use_subcommand", o) for o in top]
    lines += [f"complete -c {prog} -n __fish_use_subcommand -a {c.name} -d {_fq(c.help)}" for c in commands]
    for c in commands:
        condition = f"__fish_seen_subcommand_from {c.name}"
        lines += [_fish_option(prog, condition, o) for o in c.options]
        if c.positional_choices:
            lines.append(f"complete -c {prog} -n {_fq(condition)} -a {_fq(' '.join(c.positional_choices))}")
    lines.append(f"# subcommands: {names}")
    return "\n".join(lines) + "\n"


def script(shell: str, parser: argparse.ArgumentParser, path_dests: Iterable[str] = ()) -> str:
    """The completion script of ``parser`` for ``shell`` (one of :data:`SHELLS`)."""
    top, commands = describe(parser, path_dests)
    generate = {"bash": bash, "zsh": zsh, "fish": fish}.get(shell)
    if generate is None:
        raise ValueError(f"no completion for {shell!r} (one of {', '.join(SHELLS)})")
    return generate(parser.prog, top, commands)


__all__ = ["SHELLS", "Command", "Option", "describe", "script"]
