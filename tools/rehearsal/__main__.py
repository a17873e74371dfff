"""``python -m tools.rehearsal``: build the image or the mirror, or run the create on VMs by hand.

    venv/bin/python -m tools.rehearsal image [--suite trixie]     # build (or show) the base image
    venv/bin/python -m tools.rehearsal mirror                     # build (or show) the mirror tree
    venv/bin/python -m tools.rehearsal up [--count 3] [--hold]    # boot, run the program's create
    venv/bin/python -m tools.rehearsal up --suites trixie,bookworm,bookworm   # Debian release per VM
    venv/bin/python -m tools.rehearsal up --scripts-from-git REV  # ... with the scripts of REV

``--hold`` keeps the VMs and the mirror up after the run and prints how to reach them, until
Ctrl-C. Needs root, qemu-system-x86, qemu-utils, debootstrap and vde2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tools.rehearsal import image, mirror, program
from tools.rehearsal.session import DEFAULT_SUITES, Rehearsal, default_suites, missing_requirements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("image", help="build (or reuse) the base image")
    build.add_argument("--suite", default="trixie", choices=image.SUITES)
    build.add_argument("--rebuild", action="store_true")
    sub.add_parser("mirror", help="build (or reuse) the mirror tree")
    up = sub.add_parser("up", help="boot VMs and run the program's create steps on them")
    up.add_argument("--count", type=int, default=3)
    up.add_argument("--suites", help="the Debian release of each VM, comma-separated (default: "
                    f"{','.join(DEFAULT_SUITES)}; one name: every VM)")
    up.add_argument("--scripts-from-git", metavar="REV", help="bundle the node scripts of this git revision")
    up.add_argument("--hold", action="store_true", help="keep the VMs up after the run, until Ctrl-C")
    args = parser.parse_args(argv)

    if args.command == "image":
        built = image.build_image(args.suite, rebuild=args.rebuild)
        print(f"{built.directory} (kernel {built.kernel_version}, built in {built.build_seconds}s)")
        return 0
    if args.command == "mirror":
        content = mirror.build_mirror()
        print(f"{content.root}\n  kubernetes {', '.join(content.kubernetes_versions)}; containerd "
              f"{content.containerd_version}; runc {content.runc_version}; from Debian {content.debian_versions}")
        return 0
    missing = missing_requirements()
    if missing:
        print("missing: " + "; ".join(missing), file=sys.stderr)
        return 2
    names = [s.strip() for s in (args.suites or "").split(",") if s.strip()]
    suites = tuple(names * args.count if len(names) == 1 else names) or default_suites(args.count)
    with tempfile.TemporaryDirectory() as tmp, Rehearsal(count=args.count, suites=suites, keep=args.hold) as run:
        scripts = program.scripts_at_revision(args.scripts_from_git, Path(tmp)) if args.scripts_from_git else None
        with run.timed("create"):
            live = program.run_live(run.config(), scripts_dir=scripts)
        print(live.explain())
        for stage, seconds in run.timings.items():
            print(f"{stage:40} {seconds:7.1f} s")
        if args.hold:
            assert run.group is not None and run.server is not None
            key = image.ssh_key()
            for vm in run.vms:
                print(f"{vm.name}: ssh -i {key} -p {vm.ssh_port} {image.USER}@127.0.0.1   (private {vm.private_ip}, "
                      f"console {vm.console})")
            print(f"mirror: {run.server.base_url('127.0.0.1')}   (Ctrl-C stops everything)")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if not live.failed() and live.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
