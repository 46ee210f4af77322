"""Prints the Python test script of nixos/test.nix, ready for a syntax and name check.

The VM test cannot run in CI (no nixpkgs, Nix 2.8, no KVM), so tests/nix/check.sh at least
compiles its `testScript` and runs pyflakes on it. Nix interpolations (`${...}`) become a
placeholder string, and the names the NixOS test driver provides are declared first, so
pyflakes reports only real mistakes (undefined names, unused variables).

Usage: python3 tests/nix/testscript.py nixos/test.nix > script.py
"""

import re
import sys
import textwrap



def driver_globals(nix: str) -> str:
    """The names the test driver defines: one per machine (`nodes.NAME = ...`), and its own."""
    machines = sorted(set(re.findall(r"^\s*nodes\.(\w+) =", nix, re.M)))
    return " = ".join(machines + ["start_all", "subtest", "None  # provided by the driver\n"])


def extract(nix: str) -> str:
    """The body of `testScript = { nodes, ... }: let ... in '' ... '';`, dedented."""
    start = nix.index("testScript = { nodes, ... }:")
    body_start = nix.index("''\n", nix.index("\n    in\n", start)) + 3
    body_end = nix.index("\n    '';", body_start)
    body = nix[body_start:body_end]
    if "''${" in body or "'''" in body:
        sys.exit("testscript.py: Nix '' escapes in the test script are not handled")
    return textwrap.dedent(re.sub(r"\$\{[^}]*\}", "NIX", body))


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        nix = f.read()
    script = extract(nix)
    if "with subtest(" not in script:
        sys.exit("testscript.py: no subtest found; is this the right file?")
    sys.stdout.write(driver_globals(nix) + script + "\n")


if __name__ == "__main__":
    main()
