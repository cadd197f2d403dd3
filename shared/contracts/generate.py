"""Regenerate (or, with ``--check``, verify) the Python code of our .proto contracts.

Usage: ``python -m shared.contracts.generate [--check]``. Generated files sit next to
each ``.proto`` under ``shared/contracts``. ``--check`` exits 1 and names the stale
files when the committed code differs from what protoc would write now.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

CONTRACTS = Path(__file__).resolve().parent
ROOT = CONTRACTS.parent.parent
_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files() -> list[Path]:
    """Every .proto of ours, relative to the repository root."""
    return sorted(path.relative_to(ROOT) for path in CONTRACTS.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc on every contract, writing Python, stubs and gRPC code to ``out_dir``."""
    well_known = str(resources.files("grpc_tools") / "_proto")
    googleapis = _googleapis_protos()
    for proto in proto_files():
        args = [
            "protoc",
            f"-I{ROOT}",
            f"-I{googleapis}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto}")


def _googleapis_protos() -> str:
    """The directory holding google/rpc/status.proto (from googleapis-common-protos)."""
    import google.rpc  # noqa: PLC0415 - only needed to locate the .proto files

    for base in google.rpc.__path__:
        candidate = Path(base).parent.parent
        if (candidate / "google" / "rpc" / "status.proto").exists():
            return str(candidate)
    raise SystemExit("google/rpc/status.proto not found; reinstall googleapis-common-protos")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated code is stale")
    options = parser.parse_args(argv)
    if not options.check:
        generate(ROOT)
        print(f"generated code for {len(proto_files())} contract(s)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [
            str(proto.parent / (proto.stem + suffix))
            for proto in proto_files()
            for suffix in _SUFFIXES
            if not (ROOT / proto.parent / (proto.stem + suffix)).exists()
            or not filecmp.cmp(
                Path(tmp) / proto.parent / (proto.stem + suffix),
                ROOT / proto.parent / (proto.stem + suffix),
                shallow=False,
            )
        ]
    if stale:
        print("stale generated code (run `make protos`): " + ", ".join(stale), file=sys.stderr)
        return 1
    print(f"generated code is current for {len(proto_files())} contract(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
