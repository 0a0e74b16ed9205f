"""``mmdrfuse data list|download|demo``: what is found under the data root, downloads, the synthetic demo set."""
from __future__ import annotations

from mmdrfuse import paths
from mmdrfuse.data.downloads import download
from mmdrfuse.data.lookup import find
from mmdrfuse.data.registry import PAPER_DATASETS, REGISTRY
from mmdrfuse.errors import MMDRFuseError


def add_arguments(p) -> None:
    import argparse

    root_help = f"data folder (default: ${paths.DATA_ENV}, else {paths.cache_dir() / 'data'})"
    p.add_argument("--data-root", default=None, help=root_help)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    lst = sub.add_parser("list", help="list the data sets, their paper counts and what is found")
    d = sub.add_parser("download", help="download data sets from their public sources")
    d.add_argument("names", nargs="+", help=f"data set names ({', '.join(PAPER_DATASETS)}) or 'all'")
    d.add_argument("--url", default=None, help="archive address overriding the registry (one data set)")
    d.add_argument("--sha256", default=None, help="expected sha256 of the archive; a mismatch is refused")
    d.add_argument("--force", action="store_true", help="download again even when present")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    m = sub.add_parser("demo", help="write the built-in synthetic demo pairs (NOT the paper's data)")
    m.add_argument("--pairs", type=int, default=None, help="number of pairs (default: the demo's default)")
    for q in (lst, d, m):  # also accepted after the action; SUPPRESS keeps the value given before it
        q.add_argument("--data-root", default=argparse.SUPPRESS, help=root_help)


RESUME_HINT = "a partial download is kept beside its target: rerun the same command to resume it"


def run(args) -> int:
    from mmdrfuse.atomic import check_out_dir

    if args.action == "list":
        root = paths.data_root(args.data_root)
        print(f"data root: {root}")
        for spec in REGISTRY.values():
            f = find(spec.name, root)
            status = "missing" if f is None else ("FLAGGED" if f.flag else "ok")
            where = (" ; ".join(f"{a.relative_to(root)} + {b.relative_to(root)}" for a, b in f.folder_pairs) if f
                     else " | ".join(f"{a} + {b}" for a, b in spec.layouts))
            found = f.n_pairs if f else 0
            print(f"{spec.name:12s} {spec.kind:9s} paper {spec.paper_pairs:4d}  found {found:4d}  {status:8s} {where}")
            if f is not None and f.flag:
                print(f"             ! {f.flag}")
            elif spec.unverified:
                print(f"             ! unverified: {spec.unverified}")
        return 0
    if args.action in ("download", "demo"):
        check_out_dir(paths.data_root(args.data_root), "data root")
    if args.action == "download":
        names = list(PAPER_DATASETS) if args.names == ["all"] else args.names
        for f in download(names, args.data_root, url=args.url, sha256=args.sha256, force=args.force,
                          progress=not args.quiet):
            print(f"{f.name}: {f.n_pairs} pairs at {f.ir_dir.parent}" + (f"  ! {f.flag}" if f.flag else ""))
        return 0
    if args.action == "demo":
        from mmdrfuse import demo

        if args.pairs is not None and args.pairs < 1:
            raise MMDRFuseError(f"--pairs {args.pairs}: give at least 1")
        kw = {} if args.pairs is None else {"n_pairs": args.pairs}
        out = demo.write_demo(paths.data_root(args.data_root), **kw)
        print(f"synthetic demo pairs written to {out} (NOT the paper's data)")
        return 0
    raise MMDRFuseError(f"unknown action {args.action!r}")
