"""``medsam2 serve INPUT [-o OUTPUT]``: annotate a volume in the browser (see docs/serve.md).

Loads the volume and the model once, binds 127.0.0.1 on a free port (or ``--port``) and prints
``medsam2 serve: open http://127.0.0.1:PORT/?token=TOKEN``. Needs the ``web`` extra.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import socket
import sys
from pathlib import Path

from medsam2.cli.common import (
    add_common_arguments,
    add_tracker_argument,
    load_cli_model,
    memory_options,
    parse_common,
    parse_int,
    parse_tracker,
    resolve_checkpoint,
    resolve_device,
)
from medsam2.cli.segment import add_volume_input_arguments
from medsam2.errors import ConfigError, InputError

__all__ = ["register_serve_command", "cmd_serve", "default_output"]

log = logging.getLogger("medsam2")

_EPILOG = """\
The page: drag a box on a slice of the axial view (or the plane of --axis), Shift+click for a
positive point, Alt+click for a negative one, then Propagate; Ctrl+Z undoes the object's last
prompt, Ctrl+S saves OUTPUT. Autosave: a hidden sidecar beside OUTPUT; starting again with the
same INPUT and OUTPUT offers to continue.
security: loopback only by default; a token is required (it is in the printed URL).
example:
  medsam2 serve ct.nii.gz -o liver.nii.gz
"""


def register_serve_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve",
        help="annotate a volume in the browser: boxes and clicks on slices, live propagation, save",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="volume file (NIfTI, NRRD, MHA) or DICOM series folder")
    add_tracker_argument(add_volume_input_arguments(p))
    s = p.add_argument_group("server")
    s.add_argument("--port", default="0", metavar="N", help="port (default: a free one)")
    s.add_argument("--host", default="127.0.0.1", metavar="ADDR", help="address to bind (default 127.0.0.1)")
    s.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host: anyone who can reach it and learns the token can read the "
        "volume and write OUTPUT, over unencrypted HTTP",
    )
    s.add_argument(
        "--no-autosave", action="store_true", help="do not keep the autosave sidecar beside OUTPUT"
    )
    add_common_arguments(
        p, default_memory="self-sorting", output_help="label volume to save (default: INPUT_labels.nii.gz)"
    )
    p.set_defaults(func=cmd_serve)


def default_output(input_path: str) -> Path:
    """``scan.nii.gz`` -> ``scan_labels.nii.gz`` beside it; a DICOM folder -> ``FOLDER_labels.nii.gz``."""
    src = Path(input_path).expanduser()
    name = src.name.rstrip("/")
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return src.with_name(f"{name}_labels.nii.gz")


def _check_host(host: str, allow_remote: bool) -> bool:
    """True when `host` is a wildcard address (any Host header then passes the allowlist)."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if host != "localhost":
            raise ConfigError(f"--host {host}: give an IP address (e.g. 127.0.0.1) or localhost") from None
        return False
    if addr.is_loopback:
        return False
    if not allow_remote:
        raise ConfigError(
            f"--host {host}: not a loopback address; the page would be reachable from other machines over "
            "unencrypted HTTP (anyone who learns the token can read the volume and write OUTPUT): pass "
            "--allow-remote if you mean it"
        )
    log.warning("serving on %s: reachable from other machines, over unencrypted HTTP", host)
    return addr.is_unspecified


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)  # connections wait in the backlog until uvicorn serves them
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    return sock


def _check_output(output: Path, overwrite: bool, has_sidecar: bool) -> None:
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give a file name such as labels.nii.gz")
    if not output.parent.is_dir():
        raise InputError(f"{output}: folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK):
        raise InputError(f"{output}: folder {output.parent} is not writable; choose another with -o")
    if output.exists() and not (overwrite or has_sidecar):
        raise InputError(f"{output}: already exists; pass --overwrite to replace it when saving")


def cmd_serve(args: argparse.Namespace) -> int:
    from medsam2.web import require_web

    require_web()
    import uvicorn

    from medsam2.io import read_image
    from medsam2.web.annotator import Annotator
    from medsam2.web.app import ServeState, create_app
    from medsam2.web.sidecar import sidecar_path

    if args.output is None:
        args.output = str(default_output(args.input))
    opts = parse_common(args)
    tracker = parse_tracker(args.tracker)
    port = parse_int(args.port, "--port", 0) or 0
    if port > 65535:
        raise ConfigError(f"--port {port}: must be 0..65535")
    wildcard = _check_host(args.host, args.allow_remote)
    _check_output(opts.output, opts.overwrite, sidecar_path(opts.output).is_file())
    resolve_checkpoint(opts)
    device = resolve_device(opts.device)
    volume = read_image(args.input, series_uid=args.series_uid, frame=parse_int(args.frame, "--frame", 0))
    model, _ = load_cli_model(opts, device)
    window = None if str(args.window).lower() == "auto" else args.window
    mem = memory_options(opts, model.config.num_maskmem)
    annotator = Annotator(
        model,
        volume,
        axis=args.axis,
        window=window,
        memory=opts.memory,
        memory_options=mem,
        speed=opts.speed,
        tracker=tracker,
    )
    state = ServeState(annotator, opts.output, "dicom-seg" if opts.output.suffix.lower() == ".dcm" else None,
                       autosave=not args.no_autosave)  # fmt: skip
    sock = _bind(args.host, port)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    hosts = (
        "localhost",
        "127.0.0.1",
        "[::1]",
        args.host if ":" not in args.host else f"[{args.host.strip('[]')}]",
    )
    app = create_app(state, token=token, port=port, hosts=hosts, any_host=wildcard)
    shown = args.host if ":" not in args.host else f"[{args.host.strip('[]')}]"
    print(f"medsam2 serve: open http://{shown}:{port}/?token={token}", flush=True)
    print(f"medsam2 serve: saving to {opts.output}; Ctrl+C stops the server", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0
