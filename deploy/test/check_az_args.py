"""Check az command lines against the real Azure CLI's own help, offline.

Usage: check_az_args.py AZ_PYTHON CACHE_DIR FILE...

Each FILE holds command lines (the fake az's logs, a dry run's output). Every line that is an
`az ...` command (after optional leading spaces or an env assignment) is split like a shell
would, and for each distinct command `az <words> --help` is run from the real CLI (answers
cached in CACHE_DIR). The check fails if the command does not exist or if any flag the script
passes is not in that command's help. Prints one line per command; exit 1 on any problem.
"""
import concurrent.futures
import hashlib
import os
import re
import shlex
import subprocess
import sys

# Lines like "    --name -n  [Required] : ..." or "    --container-image-name -c -i  : ...".
FLAG_LINE = re.compile(r"^    (--[A-Za-z0-9-]+(?: -{1,2}[A-Za-z0-9-]+)*)(?:\s|$)")


def commands(paths):
    found = {}
    for path in paths:
        with open(path) as f:
            for raw in f:
                line = raw.strip()
                if not re.match(r"^([A-Z_]+=\S+ )?az ", line):
                    continue
                try:
                    words = shlex.split(line, comments=True)
                except ValueError as e:
                    found.setdefault(("<unparsable>", line), set()).add(str(e))
                    continue
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    words.pop(0)
                words = words[1:]
                cmd = []
                while words and not words[0].startswith("-"):
                    cmd.append(words.pop(0))
                flags = {w for w in words if re.match(r"^--?[A-Za-z][A-Za-z0-9-]*$", w)}
                found.setdefault(tuple(cmd), set()).update(flags)
    return found


def help_text(az_python, cache_dir, cmd):
    key = hashlib.sha256(" ".join(cmd).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"{'_'.join(cmd)}-{key}.txt")
    if os.path.exists(path):
        with open(path) as f:
            return f.read()
    proc = subprocess.run([az_python, "-m", "azure.cli", *cmd, "--help"], capture_output=True,
                          text=True, timeout=120)
    text = proc.stdout
    if proc.returncode != 0 or "Arguments" not in text:
        return None  # not a command: not cached, so a fix is picked up next run
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return text


def known_flags(text):
    flags = set()
    for line in text.splitlines():
        m = FLAG_LINE.match(line)
        if m:
            flags.update(m.group(1).split())
    return flags


def main():
    az_python, cache_dir, *paths = sys.argv[1:]
    os.makedirs(cache_dir, exist_ok=True)
    found = commands(paths)
    if not found:
        print("no az commands found", file=sys.stderr)
        return 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        helps = dict(zip(found, pool.map(lambda c: help_text(az_python, cache_dir, c)
                                         if c and c[0] != "<unparsable>" else None, found)))
    bad = 0
    for cmd in sorted(found):
        flags = found[cmd]
        text = helps[cmd]
        name = "az " + " ".join(cmd)
        if text is None:
            print(f"  FAIL {name}: not a command of this Azure CLI ({' '.join(sorted(flags))})")
            bad += 1
            continue
        unknown = sorted(flags - known_flags(text) - {"--help", "-h"})
        if unknown:
            print(f"  FAIL {name}: unknown flag(s) {' '.join(unknown)}")
            bad += 1
        else:
            print(f"  ok   {name} {' '.join(sorted(flags))}")
    print(f"{len(found) - bad} of {len(found)} az commands match the real CLI's arguments")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
