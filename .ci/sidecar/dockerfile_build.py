"""Runs the Dockerfile's builder stage outside a container (.ci/sidecar.sh).

    dockerfile_build.py CONTEXT_COPY

The builder stage's instructions, in order, in the folder CONTEXT_COPY
(emptied first; its target/ is a link to the repository's, so dependencies
already built are reused): `COPY SRC... DEST` copies from the repository
with the files' times kept (as COPY does), `RUN` runs its command with
bash -e, `WORKDIR` is the folder itself. Any other instruction of the stage
(besides FROM, ARG and comments) is an error: this script would not know
what it does. Prints the FROM image, whose Rust version the caller checks.
"""

import os
import shlex
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def instructions(text):
    """(keyword, arguments) of each instruction, continuation lines joined."""
    line = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not line and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            line += stripped[:-1] + " "
            continue
        line += stripped
        keyword, _, rest = line.partition(" ")
        yield keyword.upper(), rest.strip()
        line = ""


def builder_stage(text):
    stage = []
    froms = 0
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            froms += 1
            if froms == 2:
                break
        stage.append((keyword, rest))
    return stage


def main():
    ctx = os.path.abspath(sys.argv[1])
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        stage = builder_stage(f.read())
    shutil.rmtree(ctx, ignore_errors=True)
    os.makedirs(ctx)
    os.symlink(os.path.join(ROOT, "target"), os.path.join(ctx, "target"))
    for keyword, rest in stage:
        if keyword == "FROM":
            print(f"FROM {rest}", flush=True)
        elif keyword in ("ARG", "WORKDIR"):
            pass
        elif keyword == "COPY":
            *sources, dest = shlex.split(rest)
            for source in sources:
                target = os.path.join(ctx, dest)
                if len(sources) > 1 or dest.endswith("/"):
                    target = os.path.join(target, os.path.basename(source.rstrip("/")))
                origin = os.path.join(ROOT, source)
                os.makedirs(os.path.dirname(target) or ctx, exist_ok=True)
                if os.path.isdir(origin):
                    shutil.copytree(origin, target, copy_function=shutil.copy2, dirs_exist_ok=True)
                else:
                    shutil.copy2(origin, target)
        elif keyword == "RUN":
            print(f"RUN {rest}", flush=True)
            subprocess.run(["bash", "-euo", "pipefail", "-c", rest], cwd=ctx, check=True)
        else:
            sys.exit(f"dockerfile_build.py: {keyword} in the builder stage: not simulated")


main()
