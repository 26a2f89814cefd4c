"""Print the README's option tables from squall.config (run: python scripts/flags_table.py)."""

from __future__ import annotations

from squall import config
from squall.cli import _metavar


def flag_cell(option: config.Option) -> str:
    meta = option.meta
    if meta["kind"] == "positional":
        return "`APP`"
    if meta["kind"] == "bool":
        return f"`{option.flag}` / `--no-{option.flag[2:]}`"
    return f"`{option.flag} {meta['metavar'] or _metavar(option) or 'VALUE'}`"


def main() -> None:
    groups: dict[str, list[config.Option]] = {}
    for option in config.options():
        groups.setdefault(option.group, []).append(option)
    for group, opts in groups.items():
        print(f"### {config.GROUP_TITLES[group]}\n")
        print("| flag | default | meaning |\n|---|---|---|")
        for option in opts:
            default = option.default()
            shown = "—" if default in (None, [], "") else f"`{default}`"
            print(f"| {flag_cell(option)} | {shown} | {option.meta['help'].replace('|', '/')} |")
        print()


if __name__ == "__main__":
    main()
